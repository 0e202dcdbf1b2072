"""CameraStream: protocol negotiation, stream addresses from customData in the results, auth tokens, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.core.device import Device
from functions.core.errors import CommandError
from functions.core.schema import is_valid
from functions.core.traits.camerastream import CameraStream
from tests.schema_oracle import oracle
from tests.unit.traits.media_helpers import apply, register, run

ICE = [{"urls": "stun:stun.example.com:19302"}]
STREAMS: dict[str, Any] = {
    "cameraStream": {
        "accessUrls": {
            "hls": "https://cam.example/live.m3u8",
            "dash": "https://cam.example/live.mpd",
            "progressive_mp4": "https://cam.example/clip.mp4",
        },
        "webrtc": {"signalingUrl": "https://cam.example/sdp", "offer": "o=- 1 2 IN IP4 127.0.0.1", "iceServers": ICE},
        "authToken": "stream-token",
        "receiverAppId": "1g2f89213hg",
    }
}
ALL_PROTOCOLS = ["webrtc", "hls", "dash", "smooth_stream", "progressive_mp4"]


def camera(protocols: list[str], need_token: bool = False) -> Device:
    attributes = {"cameraStreamSupportedProtocols": protocols, "cameraStreamNeedAuthToken": need_token}
    return register(["CameraStream"], attributes, custom_data=STREAMS)


def get_stream(
    device: Device, playable: list[str], chromecast: bool = False, custom_data: Any = STREAMS
) -> dict[str, Any]:
    params = {"StreamToChromecast": chromecast, "SupportedStreamProtocols": playable}
    effect = run(device, "GetCameraStream", params, custom_data=custom_data)
    # The addresses go to Google in the EXECUTE results and are never stored.
    assert effect.state == {}
    assert apply(device, effect).state == device.state == {}
    results_schema = oracle().trait("CameraStream").commands["action.devices.commands.GetCameraStream"].results
    assert results_schema is not None
    oracle().assert_valid(results_schema, effect.results, "GetCameraStream results")
    return effect.results


def test_the_camera_s_preferred_protocol_that_the_destination_plays_is_chosen() -> None:
    results = get_stream(camera(["dash", "hls"]), ["hls", "dash"])
    assert results == {"cameraStreamProtocol": "dash", "cameraStreamAccessUrl": "https://cam.example/live.mpd"}


def test_protocols_the_camera_has_no_address_for_are_skipped() -> None:
    # smooth_stream is the camera's first choice but customData describes no such stream.
    results = get_stream(camera(["smooth_stream", "progressive_mp4"]), ["smooth_stream", "progressive_mp4"])
    assert results["cameraStreamProtocol"] == "progressive_mp4"


def test_webrtc_answers_with_signaling_offer_and_encoded_ice_servers() -> None:
    results = get_stream(camera(ALL_PROTOCOLS), ["hls", "webrtc"])
    assert results == {
        "cameraStreamProtocol": "webrtc",
        "cameraStreamSignalingUrl": "https://cam.example/sdp",
        "cameraStreamOffer": "o=- 1 2 IN IP4 127.0.0.1",
        "cameraStreamIceServers": json.dumps(ICE),
    }


def test_the_auth_token_is_sent_only_where_the_camera_needs_one() -> None:
    assert "cameraStreamAuthToken" not in get_stream(camera(["hls"], need_token=False), ["hls"])
    assert get_stream(camera(["hls"], need_token=True), ["hls"])["cameraStreamAuthToken"] == "stream-token"
    assert get_stream(camera(["webrtc"], need_token=True), ["webrtc"])["cameraStreamAuthToken"] == "stream-token"


def test_without_a_token_of_its_own_google_uses_the_user_s_credentials() -> None:
    streams = {"cameraStream": {"accessUrls": {"hls": "https://cam.example/live.m3u8"}}}
    results = get_stream(camera(["hls"], need_token=True), ["hls"], custom_data=streams)
    assert results == {"cameraStreamProtocol": "hls", "cameraStreamAccessUrl": "https://cam.example/live.m3u8"}


def test_the_custom_cast_receiver_is_named_only_for_a_chromecast() -> None:
    assert "cameraStreamReceiverAppId" not in get_stream(camera(["hls"]), ["hls"], chromecast=False)
    assert get_stream(camera(["hls"]), ["hls"], chromecast=True)["cameraStreamReceiverAppId"] == "1g2f89213hg"


def test_no_protocol_in_common_is_unplayable() -> None:
    with pytest.raises(CommandError) as refused:
        get_stream(camera(["hls"]), ["dash", "webrtc"])
    assert refused.value.code == "streamUnplayable"
    assert refused.value.code in oracle().error_codes()


@pytest.mark.parametrize(
    "custom_data",
    [
        None,
        {},
        {"cameraStream": {}},
        {"cameraStream": {"accessUrls": {"dash": "https://cam.example/live.mpd"}}},
        {"cameraStream": {"accessUrls": {"hls": ""}}},
        {"cameraStream": {"webrtc": {"offer": "o=-"}}},
        {"cameraStream": "https://cam.example/live.m3u8"},
    ],
)
def test_a_camera_without_a_usable_stream_is_unavailable(custom_data: Any) -> None:
    with pytest.raises(CommandError) as refused:
        get_stream(camera(["hls", "webrtc"]), ["hls", "webrtc"], custom_data=custom_data)
    assert refused.value.code == "streamUnavailable"
    assert refused.value.code in oracle().error_codes()


def test_without_custom_data_in_the_context_the_stream_is_unavailable() -> None:
    # Until the shared CommandContext carries customData, the command cannot find any stream.
    device = camera(["hls"])
    with pytest.raises(CommandError) as refused:
        run(device, "GetCameraStream", {"StreamToChromecast": False, "SupportedStreamProtocols": ["hls"]})
    assert refused.value.code == "streamUnavailable"


def test_google_params_examples_run_on_google_attributes_examples() -> None:
    schemas = oracle().trait("CameraStream")
    params_examples = oracle().examples(schemas.commands["action.devices.commands.GetCameraStream"].params)
    for params in params_examples:
        outcomes = []
        for attributes in oracle().examples(schemas.attributes):
            device = register(["CameraStream"], attributes, custom_data=STREAMS)
            try:
                get_stream(device, params["SupportedStreamProtocols"], params["StreamToChromecast"])
            except CommandError as error:
                outcomes.append(error.code)
                continue
            outcomes.append("ok")
        assert "ok" in outcomes, (params, outcomes)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"StreamToChromecast": True},
        {"StreamToChromecast": True, "SupportedStreamProtocols": ["hls"]},
        {"StreamToChromecast": True, "SupportedStreamProtocols": ["rtsp"]},
        {"StreamToChromecast": "yes", "SupportedStreamProtocols": []},
        {"StreamToChromecast": False, "SupportedStreamProtocols": [], "extra": 1},
    ],
)
def test_our_params_schema_agrees_with_google(params: dict[str, Any]) -> None:
    google = oracle().trait("CameraStream").commands["action.devices.commands.GetCameraStream"].params
    assert google is not None
    ours = CameraStream.commands["action.devices.commands.GetCameraStream"].params_schema
    assert is_valid(ours, params) == (not oracle().problems(google, params))


@pytest.mark.parametrize(
    "attributes",
    [
        {"cameraStreamSupportedProtocols": ["hls"]},
        {"cameraStreamSupportedProtocols": ["rtsp"], "cameraStreamNeedAuthToken": False},
        {"cameraStreamSupportedProtocols": [], "cameraStreamNeedAuthToken": False},
    ],
)
def test_invalid_camera_attributes_are_refused(attributes: dict[str, Any]) -> None:
    assert CameraStream.attribute_errors(attributes) != []
