"""The small interfaces the domain needs from storage; adapters implement them (Firestore, in-memory fakes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.core.tokens import TokenRecord

DeviceDocument = Mapping[str, Any]


@dataclass(frozen=True)
class StoredDevice:
    document: DeviceDocument
    version: Any  # opaque; used as a precondition when writing the device back


@dataclass(frozen=True)
class Snapshot:
    """The result of one batched read: a token record and some of a user's devices (None where absent)."""

    token: TokenRecord | None
    devices: Mapping[str, StoredDevice | None] = field(default_factory=dict)


@dataclass(frozen=True)
class StateWrite:
    device_id: str
    state: Mapping[str, Any]
    version: Any


class FulfillmentStore(Protocol):
    def load(self, token_hash: str | None, agent_user_id: str, device_ids: Sequence[str]) -> Snapshot:
        """The token record (if a hash is given) and the user's named devices, read together in one round trip."""
        ...

    def list_devices(self, agent_user_id: str) -> list[tuple[str, DeviceDocument]]:
        """All of the user's device documents, in one query."""
        ...

    def commit_states(self, agent_user_id: str, writes: Sequence[StateWrite]) -> bool:
        """Writes all states at once if no device changed since it was read; False (nothing written) if one did."""
        ...

    def mark_linked(self, agent_user_id: str, now_ms: int) -> None:
        """The user is linked: outgoing HomeGraph calls for them may go ahead."""
        ...

    def disconnect(self, agent_user_id: str, now_ms: int) -> int:
        """Revokes every token of the user and marks them unlinked; returns how many tokens were revoked."""
        ...


class TokenStore(Protocol):
    def save(self, record: TokenRecord) -> None: ...

    def get(self, token_hash: str) -> TokenRecord | None: ...
