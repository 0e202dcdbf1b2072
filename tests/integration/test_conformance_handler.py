"""Google's schema examples through the real `fulfillment` function on the Firestore emulator.

For every trait: every attributes example registers a device the way `devices add` does, and SYNC and QUERY of those
devices validate against Google's schemas. For every command, every params example is EXECUTEd (one command group per
example, in one request per trait) on devices built from each attributes example in each starting state that suits
it; a command that asks for an acknowledgement gets one, as Google would ask the user. At least one device must carry
out each example; every EXECUTE response validates against Google's response schema, and every resulting state, as
answered and as QUERY reads it back, against the trait's states schema. A summary line counts what was exercised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from functions.core import traits
from functions.core.traits.base import Trait
from tests.integration.conftest import Google
from tests.schema_oracle import oracle
from tests.trait_examples import (
    attribute_examples,
    device_document,
    params_examples,
    schema_attribute_examples,
    starting_states,
)
from tools.google import execute_request, execution, query_request, sync_request

pytestmark = pytest.mark.emulator

TRAIT_NAMES = [t.name for t in traits.all_traits()]
TOTALS: Counter[str] = Counter()
MAX_DEVICES_PER_REQUEST = 500


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not TOTALS:
        return
    line = (
        "conformance through the fulfillment: "
        f"{TOTALS['traits']} traits; "
        f"{TOTALS['attributes passed']}/{TOTALS['attributes examples']} attributes examples registered and synced; "
        f"{TOTALS['params passed']}/{TOTALS['params examples']} params examples executed "
        f"(+{TOTALS['bare passed']}/{TOTALS['bare commands']} commands without an example, run with no params); "
        f"{TOTALS['states']} resulting states validated; {TOTALS['acknowledged']} executions acknowledged"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("\n" + line)


def register(user: str, devices: list[dict[str, Any]]) -> None:
    """What `python -m functions devices add` does with a file of devices."""
    from functions.fulfillment.store import FirestoreDeviceRegistry
    from tools.cli import validated_devices

    FirestoreDeviceRegistry().add(user, validated_devices(devices))


def post(google: Google, body: dict[str, Any], intent: str) -> dict[str, Any]:
    status, answer = google.post(body)
    assert status == 200, answer
    oracle().assert_response(intent, answer)
    return dict(answer)


def by_device(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {device_id: result for result in answer["payload"]["commands"] for device_id in result["ids"]}


def short(command: str) -> str:
    return command.rsplit(".", 1)[-1]


def check_states(trait: Trait, device_id: str, states: dict[str, Any], what: str) -> None:
    oracle().assert_states([trait.full_name()], states, f"{what} of {device_id}")
    TOTALS["states"] += 1


@pytest.mark.parametrize("name", TRAIT_NAMES)
def test_every_example_through_the_handler(name: str, google: Callable[[str], Google]) -> None:
    trait = traits.get(name)
    assert trait is not None
    user = f"conformance-{name}"
    client = google(user)
    schemas = oracle().trait(name)
    assert set(schemas.commands) == set(trait.commands), "commands differ from Google's"

    # Every attributes example registers a device; SYNC and QUERY of them are valid.
    examples = attribute_examples(trait)
    from_schema = len(schema_attribute_examples(trait))
    registered = [
        {**device_document(trait, attributes), "id": f"attributes-{i}"} for i, attributes in enumerate(examples)
    ]

    # Each params example gets devices of its own: every attributes example in every starting state that suits it.
    runs: list[tuple[str, int, dict[str, Any], list[str]]] = []
    candidates: list[dict[str, Any]] = []
    for command in sorted(schemas.commands):
        for index, params in enumerate(params_examples(trait, command)):
            ids = []
            for a, attributes in enumerate(examples):
                for s, state in enumerate(starting_states(trait, attributes)):
                    device_id = f"{short(command)}-{index}-a{a}-s{s}"
                    candidates.append({**device_document(trait, attributes), "id": device_id, "state": state})
                    ids.append(device_id)
            runs.append((command, index, params, ids))
    register(user, registered + candidates)

    synced = post(client, sync_request(), "sync")["payload"]["devices"]
    assert {d["id"] for d in synced} == {d["id"] for d in registered + candidates}
    queried = post(client, query_request([d["id"] for d in registered]), "query")["payload"]["devices"]
    for device_id, answer in queried.items():
        assert answer["status"] == "SUCCESS"
        check_states(trait, device_id, answer, "QUERY of a registered device")
    TOTALS["attributes examples"] += from_schema
    TOTALS["attributes passed"] += from_schema

    # One EXECUTE for all examples (one command group each); what asks for an acknowledgement is sent again with it.
    assert len(candidates) <= MAX_DEVICES_PER_REQUEST
    results: dict[str, dict[str, Any]] = {}
    if runs:
        request = execute_request([(ids, [execution(command, params)]) for command, _, params, ids in runs])
        results = by_device(post(client, request, "execute"))
        acknowledged = []
        for command, _, params, ids in runs:
            asked = [i for i in ids if results[i].get("challengeNeeded", {}).get("type") == "ackNeeded"]
            if asked:
                acknowledged.append((asked, [execution(command, params, challenge={"ack": True})]))
        if acknowledged:
            results.update(by_device(post(client, execute_request(acknowledged), "execute")))
            TOTALS["acknowledged"] += sum(len(ids) for ids, _ in acknowledged)

    carried_out = [i for i, r in results.items() if r["status"] in ("SUCCESS", "PENDING")]
    read_back = post(client, query_request(carried_out), "query")["payload"]["devices"] if carried_out else {}
    failures = []
    for command, _, params, ids in runs:
        outcomes = {i: results[i]["status"] if "errorCode" not in results[i] else results[i]["errorCode"] for i in ids}
        worked = [i for i in ids if results[i]["status"] in ("SUCCESS", "PENDING")]
        if not worked:
            failures.append(f"{short(command)} {params}: carried out on no device: {outcomes}")
        for device_id in worked:
            answered = results[device_id].get("states", {})
            check_states(trait, device_id, answered, f"EXECUTE {short(command)} {params}")
            stored = {k: v for k, v in read_back[device_id].items() if k not in ("status", "online")}
            check_states(trait, device_id, read_back[device_id], f"QUERY after {short(command)} {params}")
            differing = {k: (v, answered.get(k)) for k, v in stored.items() if answered.get(k) != v}
            if results[device_id]["status"] == "SUCCESS" and differing:
                failures.append(f"{short(command)} {params} on {device_id}: QUERY differs from EXECUTE: {differing}")
        has_examples = bool(oracle().examples(schemas.commands[command].params))
        TOTALS["params examples" if has_examples else "bare commands"] += 1
        if worked:
            TOTALS["params passed" if has_examples else "bare passed"] += 1
    TOTALS["traits"] += 1
    assert not failures, "\n".join(failures)
