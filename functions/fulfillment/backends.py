"""How the fulfillment hands commands to the device's backend (see functions.core.commands).

`DeviceBackends` is the fulfillment's FollowUps port:
  * `carry_out`, before the EXECUTE answers (once per EXECUTE, whatever its write retries): every command of a
    "pubsub" device goes to the commands topic, the commands of "webhook" devices go to the maker's endpoint in
    one signed call (functions.fulfillment.webhook). A long-running command is stored as a `PendingCommand` before
    it leaves, so that a result arriving at once finds it; what the device cloud answers becomes the device's
    outcome (`RemoteOutcome`), and nothing of a command that could not be handed over is stored.
  * `pending`, once the EXECUTE's writes are committed: a "virtual" device's command that answered PENDING is
    stored under a fresh `commandId`, and the virtual device completes it by publishing the state message a
    device cloud would have sent.
Every pending command gets its give-up time (`give_up_at`, PENDING_TIMEOUT_S), for functions/reporting/timeouts.py.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from functions.core import errors
from functions.core.commands import (
    ANSWERED_AT_ONCE,
    FOLLOW_UP_TTL_MS,
    NOT_HANDED_OVER,
    PUBSUB,
    VIRTUAL,
    WEBHOOK,
    Answers,
    Execution,
    PendingCommand,
    Publisher,
    PublishingUnavailable,
    RemoteDevices,
    RemoteOutcome,
    backend_of,
    command_message,
    give_up_at,
    virtual_result,
)
from functions.core.device import Device
from functions.core.state_messages import StateMessage, state_message_data
from functions.core.traits.base import Effect
from functions.fulfillment import webhook
from functions.platform import config

log = logging.getLogger(__name__)

# Commands handed over at once (a scene of many devices): Pub/Sub publishes and Firestore writes in parallel.
MAX_PARALLEL = 16


class PendingCommandStore(Protocol):
    def save_pending(self, pending: PendingCommand) -> None: ...


class DeviceBackends:
    """The fulfillment's FollowUps port: hands each command to the device's backend, storing the pending ones."""

    def __init__(
        self,
        store: PendingCommandStore,
        publisher: Callable[[], Publisher],
        *,
        state_topic: Callable[[], str],
        commands_topic: Callable[[], str],
        virtual_delay_ms: Callable[[], int],
        new_command_id: Callable[[], str],
        pending_timeout_ms: Callable[[], int] | None = None,
        webhook_client: Callable[[], webhook.WebhookClient] = webhook.default_client,
    ) -> None:
        self._store = store
        self._publisher = publisher  # built on first use: the fulfillment's cold start loads no Pub/Sub client
        self._state_topic = state_topic
        self._commands_topic = commands_topic
        self._virtual_delay_ms = virtual_delay_ms
        self._new_command_id = new_command_id
        self._pending_timeout_ms = pending_timeout_ms or (lambda: int(config.pending_timeout_s() * 1000))
        self._webhook_client = webhook_client  # built for each call: it reads the settings, and costs nothing
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # virtual devices, after the EXECUTE's writes

    def pending(self, agent_user_id: str, device: Device, execution: Execution, effect: Effect, now_ms: int) -> None:
        token = execution.follow_up_token
        if not token:
            return
        # Devices of the other backends are carried out by `carry_out`, before the EXECUTE answers.
        pending = dataclasses.replace(
            self._pending_command(self._new_command_id(), agent_user_id, device.id, execution, VIRTUAL, now_ms),
            due_ms=now_ms + self._virtual_delay_ms(),
        )
        self._store.save_pending(pending)
        fields = {"commandId": pending.command_id, "backend": VIRTUAL, "command": execution.command}
        try:
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
            # The EXECUTE is answered (PENDING) all the same: only the follow-up will not come (the command is
            # given up at its time), and Google tells the user it did not hear back.
            log.exception("the pending command could not be handed to its backend", extra=fields)
            return
        log.info("command pending", extra=fields)

    # devices whose own cloud carries out their commands, before the EXECUTE answers

    def carry_out(
        self, agent_user_id: str, request_id: str, devices: RemoteDevices, answered: Answers, now: int
    ) -> None:
        todo = [(device, runs) for device, runs in devices if device.id not in answered]
        by_pubsub = [(device, runs) for device, runs in todo if backend_of(device.settings) == PUBSUB]
        by_webhook = [(device, runs) for device, runs in todo if backend_of(device.settings) == WEBHOOK]
        if by_pubsub:
            answered.update(self._publish(agent_user_id, request_id, by_pubsub, now))
        if by_webhook:
            answered.update(self._call_webhook(agent_user_id, request_id, by_webhook, now))

    def _publish(self, agent_user_id: str, request_id: str, devices: RemoteDevices, now_ms: int) -> Answers:
        """Every command on the commands topic (its long-running ones stored as pending first), in parallel."""
        tasks: list[tuple[str, Callable[[], None]]] = []
        for device, runs in devices:
            for run in runs:
                command_id = self._new_command_id()
                execution = run.execution
                message = command_message(
                    command_id, agent_user_id, device.id, execution.command, execution.params, now_ms, run.long_running
                )
                pending = (
                    self._pending_command(command_id, agent_user_id, device.id, execution, PUBSUB, now_ms)
                    if run.long_running
                    else None
                )
                tasks.append((device.id, self._hand_over_task(pending, message)))
        failures = self._in_parallel([task for _, task in tasks])
        not_published: set[str] = set()
        for (device_id, _), failure in zip(tasks, failures, strict=True):
            if failure is not None:
                not_published.add(device_id)
                log.error(
                    "a command could not be published: the device answers transientError",
                    extra={"requestId": request_id, "deviceId": device_id, "reason": str(failure)[:500]},
                )
        answers: Answers = {}
        for device, runs in devices:
            if device.id in not_published:
                answers[device.id] = RemoteOutcome("ERROR", errors.TRANSIENT_ERROR)
                continue
            long_running = any(run.long_running for run in runs)
            quick = tuple(run.effect.state for run in runs if not run.long_running)
            answers[device.id] = RemoteOutcome("PENDING" if long_running else "SUCCESS", None, quick)
        log.info("commands published", extra={"requestId": request_id, "commands": len(tasks)})
        return answers

    def _hand_over_task(self, pending: PendingCommand | None, message: bytes) -> Callable[[], None]:
        def hand_over() -> None:
            if pending is not None:
                self._store.save_pending(pending)
            try:
                self._publisher().publish(self._commands_topic(), message)
            except Exception:
                if pending is not None:  # never published: nothing will complete it, and nothing should time out
                    self._store.save_pending(dataclasses.replace(pending, completed_by=NOT_HANDED_OVER))
                raise

        return hand_over

    def _call_webhook(self, agent_user_id: str, request_id: str, devices: RemoteDevices, now_ms: int) -> Answers:
        """All the devices' commands in one signed call; the long-running ones stored as pending first."""
        commands = [
            webhook.WebhookCommand(self._new_command_id(), device, run) for device, runs in devices for run in runs
        ]
        stored = {
            command.command_id: self._webhook_pending(agent_user_id, command, now_ms)
            for command in commands
            if command.run.long_running
        }
        self._save_all(list(stored.values()))
        client = self._webhook_client()
        try:
            results = client.call(agent_user_id, request_id, commands)
            answers = webhook.device_answers(request_id, commands, results)
        except webhook.WebhookFailure as failure:
            level = logging.WARNING if failure.code == errors.TRANSIENT_ERROR else logging.ERROR
            log.log(
                level,
                f"webhook call failed: its devices answer {failure.code}",
                extra={
                    "requestId": request_id,
                    "endpoint": client.endpoint,
                    "devices": len(devices),
                    "reason": failure.reason[:500],
                },
            )
            answers = webhook.failed(commands, failure.code)
        # Pending commands are what the maker left PENDING, whether it was told to expect that or not.
        pending_ids = {command_id for answer in answers.values() for command_id in answer.pending}
        updates = [
            dataclasses.replace(pending, completed_by=ANSWERED_AT_ONCE)
            for command_id, pending in stored.items()
            if command_id not in pending_ids
        ]
        updates += [
            self._webhook_pending(agent_user_id, command, now_ms)
            for command in commands
            if command.command_id in pending_ids and command.command_id not in stored
        ]
        self._save_all(updates)
        log.info("webhook called", extra={"requestId": request_id, "commands": len(commands)})
        return {device_id: answer.outcome for device_id, answer in answers.items()}

    # helpers

    def _webhook_pending(self, agent_user_id: str, command: webhook.WebhookCommand, now_ms: int) -> PendingCommand:
        execution = command.run.execution
        return self._pending_command(command.command_id, agent_user_id, command.device.id, execution, WEBHOOK, now_ms)

    def _pending_command(
        self, command_id: str, agent_user_id: str, device_id: str, execution: Execution, backend: str, now_ms: int
    ) -> PendingCommand:
        token = execution.follow_up_token
        expires_ms = now_ms + FOLLOW_UP_TTL_MS
        return PendingCommand(
            command_id=command_id,
            agent_user_id=agent_user_id,
            device_id=device_id,
            command=execution.command,
            params=dict(execution.params),
            token=token,
            created_ms=now_ms,
            expires_ms=expires_ms,
            backend=backend,
            due_ms=now_ms,
            give_up_ms=give_up_at(now_ms, token, expires_ms, self._pending_timeout_ms()),
        )

    def _save_all(self, pending: Sequence[PendingCommand]) -> None:
        failures = self._in_parallel([functools.partial(self._store.save_pending, p) for p in pending])
        for failure in failures:
            if failure is not None:
                raise failure  # storage unavailable: the EXECUTE fails as a whole, as any storage failure does

    def _in_parallel(self, tasks: Sequence[Callable[[], None]]) -> list[Exception | None]:
        """Runs the tasks (in parallel when there are several); each one's exception, or None."""
        if len(tasks) <= 1:
            return [_outcome_of(task) for task in tasks]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="backends")
            pool = self._pool
        return [future.result() for future in [pool.submit(_outcome_of, task) for task in tasks]]


def _outcome_of(task: Callable[[], None]) -> Exception | None:
    try:
        task()
    except Exception as failure:
        return failure
    return None
