"""NetworkControl: guest network, profiles, the guest password as a result, and speed tests with follow-ups."""

from __future__ import annotations

from typing import Any

import pytest

from functions.core.device import Device, new_device_document, parse_device
from functions.core.errors import CommandError
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import CommandContext, Effect
from functions.core.traits.networkcontrol import NetworkControl
from tests.schema_oracle import oracle

TRAIT = NetworkControl()
EVERYTHING = {
    "supportsEnablingGuestNetwork": True,
    "supportsDisablingGuestNetwork": True,
    "supportsGettingGuestNetworkPassword": True,
    "supportsEnablingNetworkProfile": True,
    "supportsDisablingNetworkProfile": True,
    "supportsNetworkDownloadSpeedTest": True,
    "supportsNetworkUploadSpeedTest": True,
    "networkProfiles": ["kids", "Guests"],
}
SPEED_TEST = "action.devices.commands.TestNetworkSpeed"


def register(attributes: dict[str, Any], state: dict[str, Any] | None = None) -> Device:
    document: dict[str, Any] = {
        "type": "action.devices.types.ROUTER",
        "traits": ["action.devices.traits.NetworkControl"],
        "name": {"name": "router"},
        "willReportState": True,
        "attributes": attributes,
    }
    if state is not None:
        document["state"] = state
    return parse_device("r1", new_device_document("r1", document))


def run(device: Device, command: str, params: dict[str, Any], token: str | None = None) -> Effect:
    ctx = CommandContext(
        "r1", f"action.devices.commands.{command}", params, device.attributes, device.state, 1_700_000_000_000, token
    )
    return TRAIT.execute(ctx)


def code_of(device: Device, command: str, params: dict[str, Any]) -> str:
    with pytest.raises(CommandError) as raised:
        run(device, command, params)
    return raised.value.code


def google_followup() -> dict[str, Any]:
    schema = oracle().trait("NetworkControl").commands[SPEED_TEST].followup
    assert schema is not None
    return schema


def test_google_examples_are_valid_for_us() -> None:
    schemas = oracle().trait("NetworkControl")
    for example in oracle().examples(schemas.attributes):
        assert NetworkControl.attribute_errors(example) == [], example
    for example in oracle().examples(schemas.states):
        assert NetworkControl.state_errors(EVERYTHING, example) == [], example
    for example in oracle().examples(google_followup()):
        assert schema_errors(NetworkControl.follow_up_schema or {}, example) == [], example


@pytest.mark.parametrize("enable", [True, False])
def test_guest_network_is_enabled_and_disabled(enable: bool) -> None:
    device = register(EVERYTHING)
    states = device.with_state(run(device, "EnableDisableGuestNetwork", {"enable": enable}).state).query_states()
    assert states["guestNetworkEnabled"] is enable
    oracle().assert_states(device.trait_names, states, "guest network")


def test_guest_network_changes_the_device_does_not_declare_are_refused() -> None:
    only_enabling = register({"supportsEnablingGuestNetwork": True})
    assert run(only_enabling, "EnableDisableGuestNetwork", {"enable": True}).state == {"guestNetworkEnabled": True}
    assert code_of(only_enabling, "EnableDisableGuestNetwork", {"enable": False}) == "functionNotSupported"


def test_profiles_are_matched_regardless_of_case_and_change_no_state() -> None:
    device = register(EVERYTHING)
    assert run(device, "EnableDisableNetworkProfile", {"profile": "KIDS", "enable": False}).state == {}
    assert run(device, "EnableDisableNetworkProfile", {"profile": "guests", "enable": True}).state == {}


def test_an_unknown_profile_is_not_recognized() -> None:
    code = code_of(register(EVERYTHING), "EnableDisableNetworkProfile", {"profile": "teens", "enable": False})
    assert code == "networkProfileNotRecognized"
    assert code in oracle().error_codes()


def test_profile_changes_the_device_does_not_declare_are_refused() -> None:
    device = register({"networkProfiles": ["kids"], "supportsDisablingNetworkProfile": True})
    assert code_of(device, "EnableDisableNetworkProfile", {"profile": "kids", "enable": True}) == "functionNotSupported"


def test_the_guest_password_is_a_result_and_never_reported() -> None:
    device = register(EVERYTHING, {"guestNetworkPassword": "s3cret", "guestNetworkEnabled": True})
    effect = run(device, "GetGuestNetworkPassword", {})
    assert effect.results == {"guestNetworkPassword": "s3cret"}
    assert effect.state == {}
    results = oracle().trait("NetworkControl").commands["action.devices.commands.GetGuestNetworkPassword"].results
    assert results is not None
    oracle().assert_valid(results, effect.results, "GetGuestNetworkPassword results")
    assert device.query_states() == {"guestNetworkEnabled": True, "networkSpeedTestInProgress": False}
    assert "guestNetworkPassword" in device.state


def test_a_new_device_has_an_open_guest_network_until_told_otherwise() -> None:
    assert run(register(EVERYTHING), "GetGuestNetworkPassword", {}).results == {"guestNetworkPassword": ""}


def test_a_device_document_without_the_password_is_not_ready() -> None:
    device = Device("r1", register(EVERYTHING).definition, state={})
    assert code_of(device, "GetGuestNetworkPassword", {}) == "deviceNotReady"


def test_the_password_of_a_device_that_does_not_offer_it_is_refused() -> None:
    device = register({}, {"guestNetworkPassword": "s3cret"})
    assert code_of(device, "GetGuestNetworkPassword", {}) == "functionNotSupported"


def test_a_speed_test_is_pending_with_a_token_and_running_while_it_runs() -> None:
    device = register(EVERYTHING)
    params = {"testDownloadSpeed": True, "testUploadSpeed": True}  # the token travels as ctx.follow_up_token
    effect = run(device, "TestNetworkSpeed", params, token="f1")
    assert effect.pending is True
    running = device.with_state(effect.state)
    assert running.query_states() == {"networkSpeedTestInProgress": True}
    oracle().assert_states(device.trait_names, running.query_states(), "speed test")
    assert code_of(running, "TestNetworkSpeed", params) == "networkSpeedTestInProgress"
    assert run(device, "TestNetworkSpeed", params).pending is False


def test_a_speed_test_the_device_cannot_run_is_refused() -> None:
    params = {"testDownloadSpeed": False, "testUploadSpeed": True}
    assert code_of(register({"supportsNetworkDownloadSpeedTest": True}), "TestNetworkSpeed", params) == (
        "functionNotSupported"
    )
    assert code_of(register(EVERYTHING), "TestNetworkSpeed", {"testDownloadSpeed": True}) == "protocolError"


FINISHED = {
    "networkSpeedTestInProgress": False,
    "lastNetworkDownloadSpeedTest": {
        "downloadSpeedMbps": 159.8,
        "unixTimestampSec": 1_700_000_100,
        "status": "SUCCESS",
    },
    "lastNetworkUploadSpeedTest": {"uploadSpeedMbps": 64.1, "unixTimestampSec": 1_700_000_100, "status": "FAILURE"},
}


@pytest.mark.parametrize(
    ("download", "upload", "expected"),
    [
        (True, True, {"networkDownloadSpeedMbps": 159.8}),
        (True, False, {"networkDownloadSpeedMbps": 159.8}),
        (False, True, None),
    ],
)
def test_the_speed_test_follow_up_reports_what_was_measured(
    download: bool, upload: bool, expected: dict[str, Any] | None
) -> None:
    assert NetworkControl.state_errors(EVERYTHING, FINISHED) == []
    params = {"testDownloadSpeed": download, "testUploadSpeed": upload}
    payload = NetworkControl.follow_up_payload("f1", params, FINISHED)
    body = payload["NetworkControl"]["followUpResponse"]
    if expected is None:
        assert body == {"status": "FAILURE", "errorCode": "transientError", "followUpToken": "f1"}
    else:
        assert body == {"status": "SUCCESS", "followUpToken": "f1", **expected}
    oracle().assert_valid(google_followup(), payload, "TestNetworkSpeed follow-up")
    assert schema_errors(NetworkControl.follow_up_schema or {}, payload) == []


def test_both_speeds_in_one_follow_up() -> None:
    both = {**FINISHED, "lastNetworkUploadSpeedTest": {"uploadSpeedMbps": 64.1, "status": "SUCCESS"}}
    payload = NetworkControl.follow_up_payload("f1", {"testDownloadSpeed": True, "testUploadSpeed": True}, both)
    body = payload["NetworkControl"]["followUpResponse"]
    assert (body["networkDownloadSpeedMbps"], body["networkUploadSpeedMbps"]) == (159.8, 64.1)
    oracle().assert_valid(google_followup(), payload, "TestNetworkSpeed follow-up")
