"""How the fulfillment hands a command that completes later to the device's backend (see functions.core.commands).

`DeviceBackends.pending` (the fulfillment's FollowUps port) stores a `PendingCommand` under a fresh `commandId`,
then gives it to the backend: a "virtual" device completes it by publishing the state message a device cloud would
have sent; a "pubsub" device's cloud gets it on the commands topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from functions.core.commands import (
    FOLLOW_UP_TTL_MS,
    PUBSUB,
    VIRTUAL,
    Execution,
    PendingCommand,
    Publisher,
    PublishingUnavailable,
    virtual_result,
)
from functions.core.device import Device
from functions.core.state_messages import StateMessage, state_message_data
from functions.core.traits.base import Effect

log = logging.getLogger(__name__)


class PendingCommandStore(Protocol):
    def backend(self, agent_user_id: str, device_id: str) -> str:
        """The device's backend (see `backend_of`)."""
        ...

    def save_pending(self, pending: PendingCommand) -> None: ...


class DeviceBackends:
    """The fulfillment's FollowUps port: stores each pending command and hands it to the device's backend."""

    def __init__(
        self,
        store: PendingCommandStore,
        publisher: Callable[[], Publisher],
        *,
        state_topic: Callable[[], str],
        commands_topic: Callable[[], str],
        virtual_delay_ms: Callable[[], int],
        new_command_id: Callable[[], str],
    ) -> None:
        self._store = store
        self._publisher = publisher  # built on first use: the fulfillment's cold start loads no Pub/Sub client
        self._state_topic = state_topic
        self._commands_topic = commands_topic
        self._virtual_delay_ms = virtual_delay_ms
        self._new_command_id = new_command_id

    def pending(self, agent_user_id: str, device: Device, execution: Execution, effect: Effect, now_ms: int) -> None:
        token = execution.follow_up_token
        if not token:
            return
        backend = self._store.backend(agent_user_id, device.id)
        delay = self._virtual_delay_ms() if backend == VIRTUAL else 0
        pending = PendingCommand(
            command_id=self._new_command_id(),
            agent_user_id=agent_user_id,
            device_id=device.id,
            command=execution.command,
            params=dict(execution.params),
            token=token,
            created_ms=now_ms,
            expires_ms=now_ms + FOLLOW_UP_TTL_MS,
            backend=backend,
            due_ms=now_ms + delay,
        )
        self._store.save_pending(pending)
        fields = {"commandId": pending.command_id, "backend": backend, "command": execution.command}
        try:
            if backend == PUBSUB:
                self._publisher().publish(self._commands_topic(), pending.command_message())
            else:
                result = StateMessage(
                    agent_user_id=agent_user_id,
                    device_id=device.id,
                    states=virtual_result(execution.command, execution.params, effect, pending.due_ms),
                    observed_at_ms=pending.due_ms,
                    command_id=pending.command_id,
                )
                self._publisher().publish(self._state_topic(), state_message_data(result))
        except PublishingUnavailable as unavailable:
            log.warning(
                "no Pub/Sub here: the pending command stays pending", extra={**fields, "reason": str(unavailable)}
            )
            return
        except Exception:
            # The EXECUTE is answered (PENDING) all the same: its state is stored and reported; only the
            # follow-up will not come, and Google tells the user it did not hear back.
            log.exception("the pending command could not be handed to its backend", extra=fields)
            return
        log.info("command pending", extra=fields)
