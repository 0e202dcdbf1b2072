"""Fixtures for tests through the real HTTP functions (functions-framework's create_app) on the emulators."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.schema_oracle import oracle

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fulfillment_app(firestore_emulator: object) -> Any:
    import functions_framework

    app = functions_framework.create_app(target="fulfillment", source=str(REPO_ROOT / "main.py"))
    return app.test_client()


@pytest.fixture
def issue_token(firestore_db: object) -> Callable[..., str]:
    """Issues an access token for a user, as account linking would."""
    from functions.core import tokens
    from functions.fulfillment.store import FirestoreFulfillmentStore
    from functions.platform.firestore import FirestoreTokenStore

    def issue(agent_user_id: str, ttl_s: int = 3600) -> str:
        now = int(time.time() * 1000)
        token = tokens.issue(FirestoreTokenStore(), tokens.ACCESS, agent_user_id, ttl_s, now)
        FirestoreFulfillmentStore().mark_linked(agent_user_id, now)
        return token

    return issue


@pytest.fixture
def add_devices(firestore_db: object) -> Callable[[str, list[dict[str, Any]]], None]:
    """Registers devices the way `python -m functions devices add` does (validated, initial states)."""
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from tools.cli import validated_devices

    def add(agent_user_id: str, devices: list[dict[str, Any]]) -> None:
        FirestoreDeviceRegistry().add(agent_user_id, validated_devices(devices))

    return add


class Google:
    """Calls the fulfillment like Google does and returns (HTTP status, JSON body); every 200 answer to a SYNC,
    QUERY or EXECUTE is validated against Google's response schema (tests/schema_oracle.py) on the way."""

    def __init__(self, client: Any, token: str | None) -> None:
        self.client = client
        self.token = token

    def post(self, body: Any, token: str | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        headers = {}
        bearer = token if token is not None else self.token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        if raw is not None:
            response = self.client.post("/", data=raw, headers=headers, content_type="application/json")
        else:
            response = self.client.post("/", json=body, headers=headers)
        assert response.content_type.startswith("application/json"), response.data[:200]
        answer = response.get_json()
        intent = _intent_of(body)
        if response.status_code == 200 and intent in VALIDATED_INTENTS:
            oracle().assert_response(intent, answer)
        return response.status_code, answer


VALIDATED_INTENTS = frozenset({"sync", "query", "execute"})  # DISCONNECT answers {}


def _intent_of(body: Any) -> str | None:
    """The intent ("sync", "query", ...) of a well-formed request; None for anything else (hostile tests send that)."""
    try:
        intent = body["inputs"][0]["intent"]
    except (TypeError, KeyError, IndexError):
        return None
    return intent.removeprefix("action.devices.").lower() if isinstance(intent, str) else None


@pytest.fixture
def google(fulfillment_app: Any, issue_token: Callable[..., str]) -> Callable[[str], Google]:
    def for_user(agent_user_id: str) -> Google:
        return Google(fulfillment_app, issue_token(agent_user_id))

    return for_user
