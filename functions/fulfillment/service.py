"""The fulfillment: Google's SYNC, QUERY, EXECUTE and DISCONNECT intents on a user's devices.

Transport-free: the HTTP function hands over the bearer token and the parsed JSON body and gets back a `Reply`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.core import errors, tokens
from functions.core import traits as trait_registry
from functions.core.commands import REMOTE_BACKENDS, Answers, CommandRun, Execution, RemoteDevices, backend_of
from functions.core.device import Device
from functions.core.errors import ChallengeNeeded, CommandError, ProtocolError
from functions.core.ids import id_problem
from functions.core.ports import FulfillmentStore, Snapshot, StateWrite, Validated, ValidatedReads
from functions.core.tokens import TokenRecord
from functions.core.traits.base import CommandContext, Effect
from functions.fulfillment import facts as answer_facts
from functions.fulfillment.facts import AnswerFacts
from functions.fulfillment.requests import (
    DISCONNECT,
    EXECUTE,
    QUERY,
    SYNC,
    Request,
    intent_of,
    parse_request,
    request_id_of,
)

log = logging.getLogger(__name__)

# Optimistic concurrency: a device written by someone else between our read and our write is read again.
MAX_WRITE_ATTEMPTS = 12
RETRY_BASE_S = 0.005
RETRY_CAP_S = 0.25
MAX_CACHED_TOKENS = 10_000


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    facts: AnswerFacts | None = None  # what the answer says per device, for the logs (functions.fulfillment.facts)


def unauthorized(description: str) -> Reply:
    return Reply(
        401,
        {"error": "invalid_token", "error_description": description},
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def protocol_error(request_id: str | None, message: str, intent: str | None = None, agent_user_id: str = "") -> Reply:
    """A request-level error: protocol-shaped when the request has an id to echo, a plain 400 otherwise.

    The payload keeps the fields the intent's response requires (empty), so it stays a valid response.
    """
    if request_id is None:
        return Reply(400, {"error": "invalid_request", "error_description": message})
    payload: dict[str, Any] = {"errorCode": errors.PROTOCOL_ERROR, "debugString": message}
    if intent == SYNC:
        payload.update(agentUserId=agent_user_id, devices=[])
    elif intent == QUERY:
        payload["devices"] = {}
    return Reply(200, {"requestId": request_id, "payload": payload})


class ChallengeGate(Protocol):
    """Decides whether a command needs the user's acknowledgement or PIN (two-factor challenges)."""

    def check(self, agent_user_id: str, device: Device, execution: Execution, now_ms: int) -> None:
        """Returns if the command may run; raises ChallengeNeeded or CommandError otherwise."""
        ...


class FollowUps(Protocol):
    """Remembers commands that complete asynchronously, so their result can follow up to Google."""

    def pending(
        self, agent_user_id: str, device: Device, execution: Execution, effect: Effect, now_ms: int
    ) -> None: ...

    def carry_out(
        self, agent_user_id: str, request_id: str, devices: RemoteDevices, answered: Answers, now: int
    ) -> None:
        """Hands the commands of devices whose own cloud carries them out (pubsub, webhook) to it, once: a device in
        `answered` (by an earlier attempt of the same EXECUTE) is not sent again; each answer goes there."""


@dataclass
class _Outcome:
    status: str
    error_code: str | None = None
    states: dict[str, Any] | None = None
    challenge: str | None = None

    def group_key(self) -> str:
        return json.dumps([self.status, self.error_code, self.states, self.challenge], sort_keys=True)

    def as_result(self, ids: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {"ids": ids, "status": self.status}
        if self.states is not None:
            result["states"] = self.states
        if self.error_code:
            result["errorCode"] = self.error_code
        if self.challenge:
            result["challengeNeeded"] = {"type": self.challenge}
        return result


def _now_ms() -> int:
    return int(time.time() * 1000)


class Fulfillment:
    def __init__(
        self,
        store: FulfillmentStore,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        sleep: Callable[[float], None] = time.sleep,
        challenges: ChallengeGate | None = None,
        follow_ups: FollowUps | None = None,
        token_cache_ms: int = 10_000,
    ) -> None:
        self._store = store
        self._reads = ValidatedReads(store)  # each device validated once per version (functions.core.ports)
        # Validated token records, so that a warm instance reads only the devices: a token revoked by another
        # instance keeps working here for at most `token_cache_ms` (DISCONNECT on this instance evicts at once).
        self._token_cache_ms = token_cache_ms
        self._token_cache: dict[str, tuple[TokenRecord, int]] = {}
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._challenges = challenges
        self._follow_ups = follow_ups

    def handle(self, bearer_token: str | None, body: Any, malformed: str | None = None) -> Reply:
        """Answers one request; `malformed` says why the transport could not read a body at all."""
        named = tokens.parse(bearer_token or "")
        if named is None or named[0] != tokens.ACCESS:
            return unauthorized("a valid access token is required")
        agent_user_id = named[1]
        token_hash = tokens.hash_token(bearer_token or "")
        token = bearer_token or ""
        try:
            if malformed:
                raise ProtocolError(malformed)
            request = parse_request(body)
        except ProtocolError as problem:
            # Nothing about the request is answered to someone who is not authenticated.
            if self._load(token, token_hash, agent_user_id, []) is None:
                return unauthorized("the access token is unknown, expired or revoked")
            log.warning("malformed request", extra={"requestId": request_id_of(body), "reason": str(problem)})
            return protocol_error(request_id_of(body), str(problem), intent_of(body), agent_user_id)

        snapshot = self._load(token, token_hash, agent_user_id, request.device_ids)
        if snapshot is None:
            return unauthorized("the access token is unknown, expired or revoked")
        if request.intent == SYNC:
            return self._sync(request, agent_user_id)
        if request.intent == QUERY:
            return self._query(request, snapshot)
        if request.intent == EXECUTE:
            return self._execute(request, agent_user_id, snapshot)
        assert request.intent == DISCONNECT
        # One member of a household unlinks: only the grant this token belongs to goes (the store keeps the user
        # linked while another grant lives). The user's other cached tokens are read again, and still work.
        revoked = self._store.disconnect(agent_user_id, self._clock_ms(), token_hash)
        for cached_hash, (record, _) in list(self._token_cache.items()):
            if record.agent_user_id == agent_user_id:
                self._token_cache.pop(cached_hash, None)
        log.info(
            "user disconnected",
            extra={"requestId": request.request_id, "intent": DISCONNECT, "revoked": revoked},
        )
        return Reply(200, {})

    def _load(self, token: str, token_hash: str, agent_user_id: str, device_ids: list[str]) -> Snapshot | None:
        """The devices, read together with the token record unless a recent check is cached; None if not valid.

        Ids that cannot name a document are not looked up: such a device does not exist.
        """
        device_ids = [device_id for device_id in device_ids if id_problem(device_id) is None]
        now = self._clock_ms()
        cached = self._token_cache.get(token_hash)
        if cached is not None and now - cached[1] < self._token_cache_ms:
            if not cached[0].grants(token, tokens.ACCESS, agent_user_id, now):
                return None
            return self._reads.load(None, agent_user_id, device_ids)
        # The devices are validated once the token is accepted (a refused token gets a snapshot without any).
        snapshot = self._reads.load(
            token_hash, agent_user_id, device_ids, lambda found: found.grants(token, tokens.ACCESS, agent_user_id, now)
        )
        record = snapshot.token
        if record is None:
            self._token_cache.pop(token_hash, None)
            return None
        if self._token_cache_ms > 0:
            if len(self._token_cache) >= MAX_CACHED_TOKENS:
                self._token_cache.pop(next(iter(self._token_cache)))
            self._token_cache[token_hash] = (record, now)
        return snapshot

    # SYNC

    def _sync(self, request: Request, agent_user_id: str) -> Reply:
        devices = []
        invalid = 0
        for _, found in self._reads.list(agent_user_id):
            if isinstance(found, str):
                invalid += 1
                log.error("device left out of SYNC", extra={"requestId": request.request_id, "reason": found})
            else:
                devices.append(found.sync_view())
        self._store.mark_linked(agent_user_id, self._clock_ms())
        log.info(
            "sync",
            extra={
                "requestId": request.request_id,
                "intent": SYNC,
                "devices": len(devices),
                "invalid": invalid,
            },
        )
        payload = {"agentUserId": agent_user_id, "devices": devices}
        told = AnswerFacts(SYNC, request.request_id, answer_facts.sync_facts(devices))
        return Reply(200, {"requestId": request.request_id, "payload": payload}, facts=told)

    # QUERY

    def _query(self, request: Request, snapshot: Snapshot) -> Reply:
        answers: dict[str, Any] = {}
        for device_id in request.device_ids:
            device = self._device(snapshot, device_id, request.request_id)
            if device is None:
                answers[device_id] = {
                    "online": False,
                    "status": "ERROR",
                    "errorCode": errors.DEVICE_NOT_FOUND,
                }
            elif not device.online:
                answers[device_id] = {
                    "online": False,
                    "status": "OFFLINE",
                    "errorCode": errors.DEVICE_OFFLINE,
                }
            else:
                answers[device_id] = {"online": True, "status": "SUCCESS", **device.query_states()}
        log.info(
            "query",
            extra={
                "requestId": request.request_id,
                "intent": QUERY,
                "devices": len(answers),
                "errors": sum(1 for a in answers.values() if a["status"] != "SUCCESS"),
            },
        )
        per_device = tuple(
            answer_facts.query_fact(i, answer_facts.device_in(snapshot, i), a) for i, a in answers.items()
        )
        return Reply(
            200,
            {"requestId": request.request_id, "payload": {"devices": answers}},
            facts=AnswerFacts(QUERY, request.request_id, per_device),
        )

    def _device(self, snapshot: Snapshot, device_id: str, request_id: str) -> Device | None:
        stored = snapshot.devices.get(device_id)
        if stored is None:
            return None
        assert isinstance(stored, Validated), "devices are validated as they are read (ValidatedReads)"
        if isinstance(stored.device, str):
            log.error("invalid device document", extra={"requestId": request_id, "reason": stored.device})
            return None
        return stored.device

    # EXECUTE

    def _execute(self, request: Request, agent_user_id: str, snapshot: Snapshot) -> Reply:
        plan: dict[str, list[Execution]] = {}
        for group in request.commands:
            for device_id in group.device_ids:
                plan.setdefault(device_id, []).extend(group.executions)

        outcomes: dict[str, _Outcome] = {}
        answered: Answers = {}  # devices whose own cloud took the commands: never sent twice
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if attempt:
                # Exponential backoff with full jitter spreads out writers that collided on the same device.
                self._sleep(random.uniform(0, min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt)))  # noqa: S311
                snapshot = self._reads.load(None, agent_user_id, [i for i in plan if id_problem(i) is None])
            now_ms = self._clock_ms()
            outcomes, writes, pending = self._plan_outcomes(request, agent_user_id, snapshot, plan, now_ms, answered)
            if not writes or self._reads.commit(agent_user_id, snapshot, writes):
                for device, execution, effect in pending:
                    if self._follow_ups is not None:
                        self._follow_ups.pending(agent_user_id, device, execution, effect, now_ms)
                break
        else:
            log.error("execute gave up after write conflicts", extra={"requestId": request.request_id})
            # Only the devices whose states were not written fail: a device cloud already has its commands.
            outcomes = {
                device_id: _Outcome("ERROR", errors.TRANSIENT_ERROR)
                if o.status in ("SUCCESS", "PENDING") and device_id not in answered
                else o
                for device_id, o in outcomes.items()
            }

        groups: dict[str, tuple[_Outcome, list[str]]] = {}
        for device_id, outcome in outcomes.items():
            groups.setdefault(outcome.group_key(), (outcome, []))[1].append(device_id)
        commands = [outcome.as_result(ids) for outcome, ids in groups.values()]
        log.info(
            "execute",
            extra={
                "requestId": request.request_id,
                "intent": EXECUTE,
                "devices": len(outcomes),
                "statuses": {
                    o.status: sum(1 for x in outcomes.values() if x.status == o.status) for o in outcomes.values()
                },
            },
        )
        per_device = tuple(
            answer_facts.execute_fact(i, answer_facts.device_in(snapshot, i), plan.get(i, ()), o.status, o.error_code)
            for i, o in outcomes.items()
        )
        return Reply(
            200,
            {"requestId": request.request_id, "payload": {"commands": commands}},
            facts=AnswerFacts(EXECUTE, request.request_id, per_device),
        )

    def _plan_outcomes(
        self,
        request: Request,
        agent_user_id: str,
        snapshot: Snapshot,
        plan: Mapping[str, Sequence[Execution]],
        now_ms: int,
        answered: Answers,
    ) -> tuple[dict[str, _Outcome], list[StateWrite], list[tuple[Device, Execution, Effect]]]:
        outcomes: dict[str, _Outcome] = {}
        writes: list[StateWrite] = []
        pending: list[tuple[Device, Execution, Effect]] = []
        # (device, its state after the commands, results, status, errorCode) of the devices that ran them all
        settled: list[tuple[Device, Device, dict[str, Any], str, str | None]] = []
        remote: list[tuple[Device, list[CommandRun], dict[str, Any]]] = []
        follow_ups = self._follow_ups
        for device_id, executions in plan.items():
            device = self._device(snapshot, device_id, request.request_id)
            if device is None:
                outcomes[device_id] = _Outcome("ERROR", errors.DEVICE_NOT_FOUND)
                continue
            if not device.online:
                outcomes[device_id] = _Outcome("OFFLINE", errors.DEVICE_OFFLINE)
                continue
            try:
                after, results, runs = self._run(agent_user_id, device, executions, now_ms)
            except ChallengeNeeded as challenge:
                # An acknowledgement is asked with the device's current states, which Google may read out.
                states = {"online": True, **device.query_states()} if challenge.challenge_type == "ackNeeded" else None
                outcomes[device_id] = _Outcome("ERROR", challenge.code, states, challenge.challenge_type)
                continue
            except CommandError as failure:
                log.info(
                    "command refused",
                    extra={
                        "requestId": request.request_id,
                        "errorCode": failure.code,
                        "reason": failure.debug,
                    },
                )
                outcomes[device_id] = _Outcome("ERROR", failure.code)
                continue
            if follow_ups is not None and backend_of(device.settings) in REMOTE_BACKENDS:
                remote.append((device, runs, results))  # its own cloud carries them out: handed over below
                continue
            device_pending = [(run.execution, run.effect) for run in runs if run.long_running]
            is_pending = bool(device_pending) and self._follow_ups is not None
            settled.append((device, after, results, "PENDING" if is_pending else "SUCCESS", None))
            pending.extend((device, execution, effect) for execution, effect in device_pending)
        if follow_ups is not None and remote:
            follow_ups.carry_out(agent_user_id, request.request_id, [(d, r) for d, r, _ in remote], answered, now_ms)
            for device, _, results in remote:
                answer = answered[device.id]
                settled.append((device, answer.after(device), results, answer.status, answer.error_code))
        for device, after, results, status, code in settled:
            states = {"online": True, **after.query_states(), **results} if status in ("SUCCESS", "PENDING") else None
            outcomes[device.id] = _Outcome(status, code, states)
            if after.state != device.state:
                stored = snapshot.devices[device.id]
                assert stored is not None
                writes.append(StateWrite(device.id, dict(after.state), stored.version))
        return {device_id: outcomes[device_id] for device_id in plan}, writes, pending

    def _run(
        self, agent_user_id: str, device: Device, executions: Sequence[Execution], now_ms: int
    ) -> tuple[Device, dict[str, Any], list[CommandRun]]:
        """Runs a device's commands in order; all of them take effect or, on the first error, none. A command the
        device completes later (PENDING) changes no stored state: the device's own report will."""
        results: dict[str, Any] = {}
        runs: list[CommandRun] = []
        current = device
        remote = self._follow_ups is not None and backend_of(device.settings) in REMOTE_BACKENDS
        for execution in executions:
            trait = trait_registry.for_command(execution.command)
            if trait is None or trait.full_name() not in device.trait_names:
                raise CommandError(
                    errors.FUNCTION_NOT_SUPPORTED, f"{execution.command} is not supported by this device"
                )
            if self._challenges is not None:
                self._challenges.check(agent_user_id, current, execution, now_ms)
            effect = trait.execute(
                CommandContext(
                    device_id=device.id,
                    command=execution.command,
                    params=execution.params,
                    attributes=device.attributes,
                    state=current.state,
                    now_ms=now_ms,
                    follow_up_token=execution.follow_up_token if self._follow_ups is not None else None,
                    custom_data=device.definition.get("customData") or {},
                )
            )
            results.update(effect.results)
            # Pending means pending: the device has not done it yet. Its state changes when the device's result
            # arrives (a state message with the command's id), and only as the device reports it. A device with
            # its own cloud answers every long-running command so, with Google's token or without.
            long_running = effect.pending or (remote and trait.is_long_running(execution.command))
            runs.append(CommandRun(execution, effect, long_running))
            if not long_running:
                current = current.with_state(effect.state)
        return current, results, runs
