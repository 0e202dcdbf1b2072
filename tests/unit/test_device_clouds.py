"""Connecting device clouds, without emulators: long-running commands, the "pubsub" and "webhook" backends on the
fulfillment, webhook signatures and answers, Matter deduplication fields, and giving up pending commands.

The same paths run on the emulators in tests/integration/test_device_clouds.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

import devicecloud
from functions.core import tokens
from functions.core import traits as trait_registry
from functions.core.commands import (
    FOLLOW_UP_SAFETY_MS,
    FOLLOW_UP_TTL_MS,
    GIVEN_UP,
    PendingCommand,
    give_up_at,
)
from functions.core.device import parse_device
from functions.core.errors import InvalidDevice
from functions.fulfillment import webhook
from functions.fulfillment.backends import ANSWERED_AT_ONCE, NOT_HANDED_OVER, DeviceBackends
from functions.fulfillment.service import Fulfillment
from functions.reporting.pipeline import Reporter
from tests.fakes.memory import MemoryStore
from tests.fakes.memory_reporting import MemoryReportStore
from tests.schema_oracle import oracle
from tests.unit.reporting_helpers import RecordingHomeGraph, document, lamp, lock
from tools.google import execute_request, execution

NOW = 1_800_000_000_000
C = "action.devices.commands."

# Google's guidance of 2026-08-12 (Cloud-to-cloud release notes): these complete later.
LONG_RUNNING = {
    "LockUnlock": {"LockUnlock"},
    "OpenClose": {"OpenClose", "OpenCloseRelative"},
    "StartStop": {"StartStop"},
    "Cook": {"Cook"},
    "Dispense": {"Dispense"},
    "Dock": {"Dock"},
    "NetworkControl": {"TestNetworkSpeed"},
}


def test_the_traits_say_which_commands_are_long_running() -> None:
    for trait in trait_registry.all_traits():
        found = {name.rsplit(".", 1)[1] for name in trait.commands if trait.is_long_running(name)}
        assert found == LONG_RUNNING.get(trait.name, set()), trait.name
    lock_trait = trait_registry.get("action.devices.traits.LockUnlock")
    assert lock_trait is not None
    assert not lock_trait.is_long_running(C + "NoSuchCommand")


def test_a_command_is_given_up_in_time_for_its_failure_to_reach_google() -> None:
    expires = NOW + FOLLOW_UP_TTL_MS
    assert give_up_at(NOW, None, expires, 300_000) == NOW + 300_000  # no token: the timeout alone
    assert give_up_at(NOW, "t", expires, 300_000) == expires - FOLLOW_UP_SAFETY_MS  # before the token expires
    assert give_up_at(NOW, "t", expires, 30_000) == NOW + 30_000
    assert give_up_at(NOW, "t", NOW + 1_000, 30_000) == NOW  # never before it was issued


# The backends on the fulfillment (in memory)


class Published:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        if self.fail:
            raise RuntimeError("Pub/Sub is down")
        self.messages.append((topic, json.loads(data)))
        return str(len(self.messages))


class ScriptedWebhook:
    """A maker's endpoint as the fulfillment's webhook client sees it: `answer` makes the results of a call."""

    endpoint = "https://maker.example"

    def __init__(self, answer: Callable[[Sequence[webhook.WebhookCommand]], list[Any]]) -> None:
        self.answer = answer
        self.calls: list[list[webhook.WebhookCommand]] = []

    def call(self, agent_user_id: str, request_id: str, commands: Sequence[webhook.WebhookCommand]) -> list[Any]:
        self.calls.append(list(commands))
        return self.answer(commands)


class Setup:
    def __init__(self, *devices: dict[str, Any], fail: bool = False, answer: Any = None) -> None:
        self.store = MemoryStore()
        self.pending = MemoryReportStore()
        self.published = Published(fail)
        self.webhook = ScriptedWebhook(answer or (lambda commands: []))
        for device in devices:
            self.store.put_device("alice", device["id"], document(device))
            self.pending.put_device("alice", device["id"], document(device))
        ids = iter(f"cmd-{n}" for n in range(1, 100))
        backends = DeviceBackends(
            self.pending,
            lambda: self.published,
            state_topic=lambda: "device-state",
            commands_topic=lambda: "device-commands",
            virtual_delay_ms=lambda: 0,
            new_command_id=lambda: next(ids),
            pending_timeout_ms=lambda: 300_000,
            webhook_client=lambda: self.webhook,  # type: ignore[arg-type, return-value]
        )
        self.service = Fulfillment(self.store, clock_ms=lambda: NOW, sleep=lambda _: None, follow_ups=backends)
        self.token = tokens.issue(self.store, tokens.ACCESS, "alice", 3600, NOW)

    def execute(self, *groups: tuple[Sequence[str], Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        reply = self.service.handle(self.token, execute_request(list(groups)))
        assert reply.status == 200
        oracle().assert_response("execute", reply.body)
        return {device_id: result for result in reply.body["payload"]["commands"] for device_id in result["ids"]}

    def state(self, device_id: str) -> dict[str, Any]:
        return dict(self.store.devices["alice"][device_id]["state"])

    def saved(self, command_id: str) -> dict[str, Any]:
        return self.pending.pending[("alice", command_id)]


def test_every_command_of_a_pubsub_device_goes_to_the_commands_topic() -> None:
    setup = Setup(lamp("lamp", backend="pubsub"), lock(backend="pubsub"))
    results = setup.execute(
        (["lamp"], [execution("OnOff", {"on": True})]), (["front-door"], [execution("LockUnlock", {"lock": True})])
    )
    # The quick command answers SUCCESS with what it set, stored at once; the long-running one PENDING, though
    # Google gave no followUpToken, and nothing is stored until the lock reports.
    assert results["lamp"]["status"] == "SUCCESS"
    assert results["lamp"]["states"]["on"] is True
    assert setup.state("lamp")["on"] is True
    assert results["front-door"]["status"] == "PENDING"
    assert results["front-door"]["states"]["isLocked"] is False
    assert setup.state("front-door")["isLocked"] is False
    sent = {body["deviceId"]: body for topic, body in setup.published.messages if topic == "device-commands"}
    assert set(sent) == {"lamp", "front-door"}
    assert sent["lamp"]["expectsResult"] is False
    assert sent["front-door"]["expectsResult"] is True
    assert sent["front-door"]["params"] == {"lock": True}
    pending = setup.saved(sent["front-door"]["commandId"])
    assert pending["followUpToken"] is None
    assert pending["giveUpAt"] == NOW + 300_000
    assert ("alice", sent["lamp"]["commandId"]) not in setup.pending.pending  # a quick command is not pending


def test_google_s_token_stays_with_us_and_bounds_the_give_up() -> None:
    setup = Setup(lock(backend="pubsub"))
    params = {"lock": True, "followUpToken": "google-token"}
    assert setup.execute((["front-door"], [execution("LockUnlock", params)]))["front-door"]["status"] == "PENDING"
    [(_, body)] = setup.published.messages
    assert "google-token" not in json.dumps(body)
    pending = setup.saved(body["commandId"])
    assert pending["followUpToken"] == "google-token"
    assert pending["giveUpAt"] == NOW + FOLLOW_UP_TTL_MS - FOLLOW_UP_SAFETY_MS


def test_a_command_that_cannot_be_published_stores_nothing_and_answers_transient_error() -> None:
    setup = Setup(lamp("lamp", backend="pubsub"), lock(backend="pubsub"), lamp("virtual-lamp"), fail=True)
    results = setup.execute(
        (["lamp", "virtual-lamp"], [execution("OnOff", {"on": True})]),
        (["front-door"], [execution("LockUnlock", {"lock": True})]),
    )
    assert results["lamp"] == {"ids": ["lamp", "front-door"], "status": "ERROR", "errorCode": "transientError"}
    assert setup.state("lamp")["on"] is False
    assert results["virtual-lamp"]["status"] == "SUCCESS"  # a Firestore device needs no Pub/Sub
    [(_, saved)] = setup.pending.pending.items()
    assert saved["completedBy"] == NOT_HANDED_OVER  # nothing will complete it: it is not left to time out
    assert "giveUpAt" not in saved


def results_for(
    **by_command: dict[str, Any],
) -> Callable[[Sequence[webhook.WebhookCommand]], list[Any]]:
    """A maker answering each command by its short name."""

    def answer(commands: Sequence[webhook.WebhookCommand]) -> list[Any]:
        return [{"commandId": c.command_id, **by_command[c.run.execution.command.rsplit(".", 1)[1]]} for c in commands]

    return answer


def test_a_webhook_device_takes_one_call_for_all_its_commands_and_its_states_are_stored() -> None:
    answer = results_for(
        OnOff={"status": "SUCCESS", "states": {"on": True, "online": True}},
        BrightnessAbsolute={"status": "SUCCESS"},
        LockUnlock={"status": "PENDING"},
    )
    setup = Setup(lamp("lamp-1", backend="webhook"), lamp("lamp-2", backend="webhook"), lock(backend="webhook"),
                  answer=answer)  # fmt: skip
    results = setup.execute(
        (["lamp-1", "lamp-2"], [execution("OnOff", {"on": True}), execution("BrightnessAbsolute", {"brightness": 70})]),
        (["front-door"], [execution("LockUnlock", {"lock": True, "followUpToken": "tok"})]),
    )
    [call] = setup.webhook.calls
    assert len(call) == 5
    assert results["lamp-1"]["status"] == results["lamp-2"]["status"] == "SUCCESS"
    assert results["lamp-1"]["states"] == {"online": True, "on": True, "brightness": 70}
    assert setup.state("lamp-2") == {"on": True, "brightness": 70}  # the maker's states, then what the command sets
    assert results["front-door"]["status"] == "PENDING"
    assert setup.state("front-door")["isLocked"] is False
    [lock_command] = [c for c in call if c.device.id == "front-door"]
    assert lock_command.body()["expectsResult"] is True
    assert setup.saved(lock_command.command_id)["completedBy"] is None  # stored before the call: a result finds it


def test_a_long_running_command_the_webhook_finished_at_once_is_not_left_pending() -> None:
    setup = Setup(lock(backend="webhook"), answer=results_for(LockUnlock={"status": "SUCCESS"}))
    results = setup.execute((["front-door"], [execution("LockUnlock", {"lock": True})]))
    assert results["front-door"]["status"] == "SUCCESS"
    assert setup.state("front-door")["isLocked"] is True
    [(_, saved)] = setup.pending.pending.items()
    assert saved["completedBy"] == ANSWERED_AT_ONCE


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status": "OFFLINE"}, {"status": "OFFLINE", "errorCode": "deviceOffline"}),
        ({"status": "ERROR", "errorCode": "deviceTurnedOff"}, {"status": "ERROR", "errorCode": "deviceTurnedOff"}),
        ({"status": "ERROR"}, {"status": "ERROR", "errorCode": "hardError"}),
        ({"status": "DONE"}, {"status": "ERROR", "errorCode": "hardError"}),
        ({"status": "SUCCESS", "states": {"color": "red"}}, {"status": "ERROR", "errorCode": "hardError"}),
        ({"status": "SUCCESS", "states": {"brightness": 101}}, {"status": "ERROR", "errorCode": "hardError"}),
        ({"status": "SUCCESS", "why": "extra"}, {"status": "ERROR", "errorCode": "hardError"}),
    ],
    ids=["offline", "error", "error-without-code", "unknown-status", "unknown-state", "invalid-state", "extra-field"],
)
def test_webhook_answers_become_the_device_s_outcome(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    setup = Setup(lamp("lamp", backend="webhook"), answer=results_for(OnOff=answer))
    result = setup.execute((["lamp"], [execution("OnOff", {"on": True})]))["lamp"]
    assert {k: v for k, v in result.items() if k != "ids"} == expected
    assert setup.state("lamp")["on"] is False


def test_a_missing_result_is_a_hard_error_for_its_device_only() -> None:
    def answer(commands: Sequence[webhook.WebhookCommand]) -> list[Any]:
        return [{"commandId": c.command_id, "status": "SUCCESS"} for c in commands if c.device.id == "lamp-1"]

    setup = Setup(lamp("lamp-1", backend="webhook"), lamp("lamp-2", backend="webhook"), answer=answer)
    results = setup.execute((["lamp-1", "lamp-2"], [execution("OnOff", {"on": True})]))
    assert results["lamp-1"]["status"] == "SUCCESS"
    assert results["lamp-2"]["errorCode"] == "hardError"


@pytest.mark.parametrize(("code", "expected"), [("transientError", "transientError"), ("hardError", "hardError")])
def test_a_webhook_call_that_fails_answers_an_error_never_a_5xx(code: str, expected: str) -> None:
    def answer(commands: Sequence[webhook.WebhookCommand]) -> list[Any]:
        raise webhook.WebhookFailure(code, "the endpoint is down")

    setup = Setup(lamp("lamp", backend="webhook"), lock(backend="webhook"), answer=answer)
    results = setup.execute(
        (["lamp"], [execution("OnOff", {"on": True})]), (["front-door"], [execution("LockUnlock", {"lock": True})])
    )
    assert {r["status"] for r in results.values()} == {"ERROR"}
    assert {r["errorCode"] for r in results.values()} == {expected}
    [(_, saved)] = setup.pending.pending.items()
    assert saved["completedBy"] == ANSWERED_AT_ONCE  # not left to time out


def test_a_write_conflict_does_not_send_the_commands_twice() -> None:
    setup = Setup(lamp("lamp", backend="webhook"), answer=results_for(OnOff={"status": "SUCCESS"}))
    commits = setup.store.commit_states
    conflicts = [True]

    def conflicting(agent_user_id: str, writes: Sequence[Any]) -> bool:
        if conflicts:
            conflicts.pop()
            setup.store.put_device("alice", "lamp", {**setup.store.devices["alice"]["lamp"], "online": True})
        return commits(agent_user_id, writes)

    setup.store.commit_states = conflicting  # type: ignore[method-assign]
    assert setup.execute((["lamp"], [execution("OnOff", {"on": True})]))["lamp"]["status"] == "SUCCESS"
    assert len(setup.webhook.calls) == 1
    assert setup.state("lamp")["on"] is True


def test_giving_up_after_write_conflicts_fails_only_the_devices_whose_commands_were_not_handed_over() -> None:
    setup = Setup(lamp("remote", backend="webhook"), lamp("local"), answer=results_for(OnOff={"status": "SUCCESS"}))
    setup.store.commit_states = lambda agent_user_id, writes: False  # type: ignore[method-assign]
    results = setup.execute((["remote", "local"], [execution("OnOff", {"on": True})]))
    assert results["remote"]["status"] == "SUCCESS"  # its cloud has carried it out: never sent twice, not failed
    assert (results["local"]["status"], results["local"]["errorCode"]) == ("ERROR", "transientError")
    assert len(setup.webhook.calls) == 1
    assert setup.state("local")["on"] is False


# The webhook call's signature


def test_the_signature_the_fulfillment_makes_is_the_one_the_client_checks() -> None:
    body = b'{"requestId": "r1"}'
    timestamp = str(NOW // 1000)
    headers = {"X-Smarthome-Timestamp": timestamp, "X-Smarthome-Signature": webhook.signature("s3", timestamp, body)}
    assert devicecloud.sign_webhook("s3", timestamp, body) == headers["X-Smarthome-Signature"]
    devicecloud.verify_webhook(headers, body, "s3", now=NOW / 1000)
    devicecloud.verify_webhook({k.lower(): v for k, v in headers.items()}, body, "s3", now=NOW / 1000 + 299)
    refused = {
        "wrong secret": (headers, body, "other", NOW / 1000),
        "changed body": (headers, body + b" ", "s3", NOW / 1000),
        "stale": (headers, body, "s3", NOW / 1000 + 301),
        "from the future": (headers, body, "s3", NOW / 1000 - 301),
        "unsigned": ({"X-Smarthome-Timestamp": headers["X-Smarthome-Timestamp"]}, body, "s3", NOW / 1000),
        "no timestamp": ({"X-Smarthome-Signature": headers["X-Smarthome-Signature"]}, body, "s3", NOW / 1000),
        "no secret": (headers, body, "", NOW / 1000),
    }
    for case, (given, data, secret, now) in refused.items():
        with pytest.raises(devicecloud.WebhookVerificationError):  # noqa: PT012 - the case names the failure
            devicecloud.verify_webhook(given, data, secret, now=now)
            pytest.fail(f"{case}: accepted")


@pytest.mark.parametrize(
    ("url", "secret", "reason"),
    [
        ("", "s", "WEBHOOK_URL is not set"),
        ("http://maker.example/hook", "s", "must be https"),
        ("ftp://maker.example/hook", "s", "scheme"),
        ("https://maker.example/hook", "", "WEBHOOK_SECRET is not set"),
    ],
)
def test_commands_go_only_signed_and_only_over_https(url: str, secret: str, reason: str) -> None:
    client = webhook.WebhookClient(url, secret, 1.0)
    with pytest.raises(webhook.WebhookFailure) as failure:
        client.call("alice", "r1", [])
    assert failure.value.code == "hardError"
    assert reason in failure.value.reason


# Matter deduplication


MATTER = {
    "matterUniqueId": "00112233aabbccddeeff",
    "matterOriginalVendorId": "0xfff1",
    "matterOriginalProductId": "0x1234",
}


def test_matter_fields_go_to_sync_with_the_room() -> None:
    device = {**lamp("lamp"), **MATTER, "roomHint": "Office"}
    view = parse_device("lamp", document(device)).sync_view()
    assert {key: view[key] for key in MATTER} == MATTER
    oracle().assert_response("sync", {"requestId": "r", "payload": {"agentUserId": "alice", "devices": [view]}})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"roomHint": None}, "roomHint: required"),
        ({"roomHint": "  "}, "roomHint: required"),
        ({"matterOriginalProductId": None}, "matterOriginalProductId: required"),
        ({"matterOriginalVendorId": "fff1"}, "matterOriginalVendorId"),
        ({"matterOriginalVendorId": "0x12345"}, "matterOriginalVendorId"),
        ({"matterUniqueId": "x" * 33}, "matterUniqueId"),
    ],
)
def test_matter_fields_are_checked(changes: dict[str, Any], named: str) -> None:
    device = {**lamp("lamp"), **MATTER, "roomHint": "Office", **changes}
    with pytest.raises(InvalidDevice, match=named):
        parse_device("lamp", {k: v for k, v in document(device).items() if v is not None})


def test_the_schema_oracle_allows_exactly_the_matter_fields_in_addition() -> None:
    view = parse_device("lamp", document(lamp("lamp"))).sync_view()
    sync = {"requestId": "r", "payload": {"agentUserId": "alice", "devices": [{**view, "matterSomething": "x"}]}}
    with pytest.raises(AssertionError):
        oracle().assert_response("sync", sync)
    with pytest.raises(AssertionError, match="roomHint"):
        oracle().assert_sync_device({**view, **MATTER})


# Giving up pending commands


def overdue(command_id: str, token: str | None, device: str = "front-door", **changes: Any) -> PendingCommand:
    found = PendingCommand(
        command_id, "alice", device, C + "LockUnlock", {"lock": True}, token, NOW - 400_000, NOW + 60_000,
        backend="pubsub", due_ms=NOW - 400_000, give_up_ms=NOW - 1,
    )  # fmt: skip
    return dataclasses.replace(found, **changes)


@pytest.fixture
def swept() -> tuple[MemoryReportStore, RecordingHomeGraph, Reporter]:
    from tests.unit.test_reporting import FAST

    store = MemoryReportStore()
    store.put_user("alice", linked=True)
    store.put_device("alice", "front-door", document(lock()))
    store.put_device("alice", "lamp", document(lamp("lamp")))
    homegraph = RecordingHomeGraph()
    return store, homegraph, Reporter(store, lambda: homegraph, FAST, clock_ms=lambda: NOW)


def test_an_overdue_command_is_given_up_with_a_failure_follow_up_once(
    swept: tuple[MemoryReportStore, RecordingHomeGraph, Reporter],
) -> None:
    store, homegraph, reporter = swept
    store.save_pending(overdue("with-token", "google-token"))
    store.save_pending(overdue("without-token", None))
    store.save_pending(overdue("not-yet", "t2", give_up_ms=NOW + 1))
    assert reporter.give_up_overdue("m1", NOW) == "reported"
    [body] = homegraph.bodies
    oracle().assert_report(body, {"front-door": lock()["traits"]})
    assert body["payload"]["devices"]["notifications"]["front-door"]["LockUnlock"]["followUpResponse"] == {
        "status": "FAILURE",
        "errorCode": "deviceOffline",
        "followUpToken": "google-token",
    }
    assert store.pending[("alice", "without-token")]["completedBy"] == GIVEN_UP
    assert store.pending[("alice", "not-yet")]["completedBy"] is None
    # Swept again: nothing more.
    assert reporter.give_up_overdue("m2", NOW) == "unchanged"
    assert len(homegraph.bodies) == 1


def test_a_follow_up_whose_report_was_deferred_is_reported_by_the_next_sweep(
    swept: tuple[MemoryReportStore, RecordingHomeGraph, Reporter],
) -> None:
    from functions.core.homegraph import Transient
    from functions.reporting.model import ReportDeferred
    from tests.unit.test_reporting import FAST

    store, homegraph, _ = swept
    clock = [NOW]
    reporter = Reporter(store, lambda: homegraph, FAST, clock_ms=lambda: clock[0])
    store.save_pending(overdue("deferred", "google-token"))
    homegraph.failures = [Transient("reportStateAndNotification", 503, "unavailable")]
    with pytest.raises(ReportDeferred):
        reporter.give_up_overdue("m1", NOW)
    clock[0] += 1_000  # past the lease a failing HomeGraph keeps (FAST.retry_after_s)
    assert homegraph.bodies == []
    assert store.pending[("alice", "deferred")]["completedBy"]
    # The sweep's message comes again (or the next minute's): the queued FAILURE goes out, once.
    reporter.give_up_overdue("m1", NOW)
    [body] = homegraph.bodies
    oracle().assert_report(body, {"front-door": lock()["traits"]})
    assert body["payload"]["devices"]["notifications"]["front-door"]["LockUnlock"]["followUpResponse"]["status"] == (
        "FAILURE"
    )
    reporter.give_up_overdue("m2", NOW)
    assert len(homegraph.bodies) == 1
    assert "giveUpAt" not in store.pending[("alice", "deferred")]


def test_a_result_after_the_give_up_changes_the_state_but_sends_no_second_follow_up(
    swept: tuple[MemoryReportStore, RecordingHomeGraph, Reporter],
) -> None:
    from functions.core.state_messages import StateMessage

    store, homegraph, reporter = swept
    store.save_pending(overdue("late", "google-token"))
    reporter.give_up_overdue("m1", NOW)
    reporter.handle(StateMessage("alice", "front-door", {"isLocked": True}, NOW, command_id="late"), "m2", NOW)
    assert len(homegraph.bodies) == 2
    assert "notifications" not in homegraph.bodies[1]["payload"]["devices"]
    assert homegraph.bodies[1]["payload"]["devices"]["states"]["front-door"]["isLocked"] is True


def test_a_command_completed_without_a_token_is_not_given_up(
    swept: tuple[MemoryReportStore, RecordingHomeGraph, Reporter],
) -> None:
    from functions.core.state_messages import StateMessage

    store, homegraph, reporter = swept
    store.save_pending(overdue("done", None))
    reporter.handle(StateMessage("alice", "front-door", {"isLocked": True}, NOW, command_id="done"), "m1", NOW)
    assert store.pending[("alice", "done")]["completedBy"]
    assert reporter.give_up_overdue("m2", NOW) == "unchanged"
    [body] = homegraph.bodies  # the state only, no follow-up: Google gave no token
    assert "notifications" not in body["payload"]["devices"]
