"""NetworkControl: routers and other network devices: guest network, network profiles, speed tests.

The guest network password is kept in the device's state under `guestNetworkPassword`, written by the device
cloud like any other state, but never reported to Google in QUERY or Report State: it leaves only as the
result of GetGuestNetworkPassword, which the user asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import errors
from functions.core.errors import CommandError
from functions.core.schema import BOOLEAN, STRING, array, enum, integer, number, obj
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command

NETWORK_PROFILE_NOT_RECOGNIZED = "networkProfileNotRecognized"
NETWORK_SPEED_TEST_IN_PROGRESS = "networkSpeedTestInProgress"
DEVICE_NOT_READY = "deviceNotReady"
TRANSIENT_ERROR = "transientError"

# Stored with the other states, never reported (see the module docstring).
PASSWORD_KEY = "guestNetworkPassword"  # noqa: S105 - the name of a state key

_SSID = obj({"ssid": STRING}, required=("ssid",))
_TEST_STATUS = enum("SUCCESS", "FAILURE")


def _follow_up_success(*speeds: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"status": enum("SUCCESS"), "followUpToken": STRING}
    properties.update({speed: number() for speed in speeds})
    return obj(properties, required=("status", "followUpToken", *speeds))


@register
class NetworkControl(Trait):
    name = "NetworkControl"
    attributes_schema = obj(
        {
            "supportsEnablingGuestNetwork": BOOLEAN,
            "supportsDisablingGuestNetwork": BOOLEAN,
            "supportsGettingGuestNetworkPassword": BOOLEAN,
            "networkProfiles": array(STRING),
            "supportsEnablingNetworkProfile": BOOLEAN,
            "supportsDisablingNetworkProfile": BOOLEAN,
            "supportsNetworkDownloadSpeedTest": BOOLEAN,
            "supportsNetworkUploadSpeedTest": BOOLEAN,
        }
    )
    states_schema = obj(
        {
            "networkEnabled": BOOLEAN,
            "networkSettings": _SSID,
            "guestNetworkEnabled": BOOLEAN,
            "guestNetworkSettings": _SSID,
            "numConnectedDevices": integer(),
            "networkUsageMB": number(),
            "networkUsageLimitMB": number(),
            "networkUsageUnlimited": BOOLEAN,
            "lastNetworkDownloadSpeedTest": obj(
                {"downloadSpeedMbps": number(), "unixTimestampSec": integer(), "status": _TEST_STATUS}
            ),
            "lastNetworkUploadSpeedTest": obj(
                {"uploadSpeedMbps": number(), "unixTimestampSec": integer(), "status": _TEST_STATUS}
            ),
            "networkSpeedTestInProgress": BOOLEAN,
            PASSWORD_KEY: STRING,
        }
    )
    follow_up_schema = obj(
        {
            "NetworkControl": obj(
                {
                    "priority": integer(),
                    "followUpResponse": {
                        "oneOf": [
                            _follow_up_success("networkDownloadSpeedMbps"),
                            _follow_up_success("networkUploadSpeedMbps"),
                            _follow_up_success("networkDownloadSpeedMbps", "networkUploadSpeedMbps"),
                            obj(
                                {"status": enum("FAILURE"), "followUpToken": STRING, "errorCode": STRING},
                                required=("status", "followUpToken", "errorCode"),
                            ),
                        ]
                    },
                },
                required=("priority", "followUpResponse"),
            )
        },
        required=("NetworkControl",),
    )

    @classmethod
    def query_states(cls, attributes: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        reported = super().query_states(attributes, state)
        reported.pop(PASSWORD_KEY, None)
        return reported

    @classmethod
    def initial_state(cls, attributes: Mapping[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if attributes.get("supportsNetworkDownloadSpeedTest") or attributes.get("supportsNetworkUploadSpeedTest"):
            state["networkSpeedTestInProgress"] = False
        if attributes.get("supportsGettingGuestNetworkPassword") is True:
            # Until the device cloud writes the password, the guest network is taken to have none (an open
            # network), which is what GetGuestNetworkPassword then answers.
            state[PASSWORD_KEY] = ""
        return state

    @command("EnableDisableGuestNetwork", params=obj({"enable": BOOLEAN}, required=("enable",)))
    def enable_disable_guest_network(self, ctx: CommandContext) -> dict[str, Any]:
        enable = ctx.params["enable"]
        _require(ctx, "supportsEnablingGuestNetwork" if enable else "supportsDisablingGuestNetwork")
        return {"guestNetworkEnabled": enable}

    @command(
        "EnableDisableNetworkProfile",
        params=obj({"profile": STRING, "enable": BOOLEAN}, required=("profile", "enable")),
    )
    def enable_disable_network_profile(self, ctx: CommandContext) -> Effect:
        enable = ctx.params["enable"]
        _require(ctx, "supportsEnablingNetworkProfile" if enable else "supportsDisablingNetworkProfile")
        wanted = ctx.params["profile"].casefold()
        if not any(profile.casefold() == wanted for profile in ctx.attributes.get("networkProfiles") or []):
            raise CommandError(NETWORK_PROFILE_NOT_RECOGNIZED, f"no network profile {ctx.params['profile']!r}")
        # Google defines no state for profiles: the device cloud acts on the command itself.
        return Effect()

    @command("GetGuestNetworkPassword", params=obj())
    def get_guest_network_password(self, ctx: CommandContext) -> Effect:
        _require(ctx, "supportsGettingGuestNetworkPassword")
        password = ctx.state.get(PASSWORD_KEY)
        if not isinstance(password, str):
            raise CommandError(DEVICE_NOT_READY, "the device cloud has not stored the guest network password")
        return Effect(results={"guestNetworkPassword": password})

    @command(
        "TestNetworkSpeed",
        # Google always sends a followUpToken with this command; the request parser hands it over as
        # ctx.follow_up_token, so it is not among the params here.
        params=obj(
            {"testDownloadSpeed": BOOLEAN, "testUploadSpeed": BOOLEAN},
            required=("testDownloadSpeed", "testUploadSpeed"),
        ),
        long_running=True,
    )
    def test_network_speed(self, ctx: CommandContext) -> Effect:
        download = ctx.params["testDownloadSpeed"] and ctx.attributes.get("supportsNetworkDownloadSpeedTest") is True
        upload = ctx.params["testUploadSpeed"] and ctx.attributes.get("supportsNetworkUploadSpeedTest") is True
        if not (download or upload):
            raise CommandError(errors.FUNCTION_NOT_SUPPORTED, "this device cannot run the requested speed test")
        if ctx.state.get("networkSpeedTestInProgress") is True:
            raise CommandError(NETWORK_SPEED_TEST_IN_PROGRESS, "a speed test is already running")
        # The results arrive later, written by the device cloud into lastNetwork*SpeedTest.
        return Effect(state={"networkSpeedTestInProgress": True}, pending=ctx.follow_up_token is not None)

    @classmethod
    def follow_up_payload(cls, token: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """The follow-up of TestNetworkSpeed, from the results the device cloud stored once the test ended."""
        body: dict[str, Any] = {"status": "SUCCESS", "followUpToken": token}
        for asked, test_key, speed_key, answer_key in (
            ("testDownloadSpeed", "lastNetworkDownloadSpeedTest", "downloadSpeedMbps", "networkDownloadSpeedMbps"),
            ("testUploadSpeed", "lastNetworkUploadSpeedTest", "uploadSpeedMbps", "networkUploadSpeedMbps"),
        ):
            test = state.get(test_key) or {}
            if params.get(asked) and test.get("status") == "SUCCESS" and speed_key in test:
                body[answer_key] = test[speed_key]
        if len(body) == 2:  # no speed measured
            return cls.follow_up_failure(token, TRANSIENT_ERROR)
        return cls.follow_up_response(body)


def _require(ctx: CommandContext, capability: str) -> None:
    if ctx.attributes.get(capability) is not True:
        raise CommandError(errors.FUNCTION_NOT_SUPPORTED, f"the device does not declare {capability}")
