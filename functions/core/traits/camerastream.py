"""CameraStream: give Google the address of a camera's live stream, for a phone, a smart display or a Chromecast.

The stream addresses are configuration, not state: Google defines no states for this trait, and whatever is
in the stored state goes out in every QUERY. The device cloud therefore describes its streams in the device's
`customData` (Google's per-device field for the integration's own use, sent back with every EXECUTE):

    "customData": {"cameraStream": {
        "accessUrls": {"hls": "https://cam.example/live.m3u8", "progressive_mp4": "https://cam.example/clip.mp4"},
        "webrtc": {"signalingUrl": "https://cam.example/sdp", "offer": "o=- ...", "iceServers": "[...]"},
        "authToken": "...",       # sent only where the attributes say cameraStreamNeedAuthToken: true
        "receiverAppId": "..."    # a custom Cast receiver, sent only when the stream goes to a Chromecast
    }}

The stream sent is the first of the camera's protocols (its order of preference) that the destination plays
and that customData describes. The addresses are returned in the EXECUTE results and never stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core import errors
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, enum, obj
from functions.core.schema import errors as schema_errors
from functions.core.traits import register
from functions.core.traits.base import CommandContext, Effect, Trait, command

STREAM_UNAVAILABLE = "streamUnavailable"
STREAM_UNPLAYABLE = "streamUnplayable"

WEBRTC = "webrtc"
URL_PROTOCOLS = ("hls", "dash", "smooth_stream", "progressive_mp4")
PROTOCOLS = (*URL_PROTOCOLS, WEBRTC)
CUSTOM_DATA_KEY = "cameraStream"

_PROTOCOL = enum(*PROTOCOLS)

# Our own description of a camera's streams in customData (see the module docstring).
STREAM_SOURCE_SCHEMA = obj(
    {
        "accessUrls": obj({protocol: NON_EMPTY_STRING for protocol in URL_PROTOCOLS}),
        WEBRTC: obj(
            {
                "signalingUrl": NON_EMPTY_STRING,
                "offer": STRING,
                # Google wants the RTCIceServer list as a JSON-encoded string; a list is encoded for it.
                "iceServers": {"type": ["string", "array"], "items": {"type": "object"}},
            },
            required=("signalingUrl",),
        ),
        "authToken": NON_EMPTY_STRING,
        "receiverAppId": NON_EMPTY_STRING,
    }
)


def stream_source(custom_data: Any) -> Mapping[str, Any]:
    """The camera's stream description from its customData; a broken one is the device cloud's mistake."""
    source = custom_data.get(CUSTOM_DATA_KEY) if isinstance(custom_data, Mapping) else None
    if source is None:
        raise errors.CommandError(STREAM_UNAVAILABLE, f"customData.{CUSTOM_DATA_KEY} describes no stream")
    problems = schema_errors(STREAM_SOURCE_SCHEMA, source, f"customData.{CUSTOM_DATA_KEY}")
    if problems or not isinstance(source, Mapping):
        raise errors.CommandError(STREAM_UNAVAILABLE, "; ".join(problems))
    return source


def _described(source: Mapping[str, Any], protocol: str) -> bool:
    if protocol == WEBRTC:
        return WEBRTC in source
    return protocol in (source.get("accessUrls") or {})


def stream_results(
    attributes: Mapping[str, Any], source: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """The GetCameraStream results for a destination that plays `params["SupportedStreamProtocols"]`."""
    playable = set(params["SupportedStreamProtocols"])
    offered: Sequence[str] = attributes.get("cameraStreamSupportedProtocols") or ()
    common = [protocol for protocol in offered if protocol in playable]
    if not common:
        raise errors.CommandError(
            STREAM_UNPLAYABLE, f"the camera streams {list(offered)}, the destination plays {sorted(playable)}"
        )
    described = [protocol for protocol in common if _described(source, protocol)]
    if not described:
        raise errors.CommandError(STREAM_UNAVAILABLE, f"customData describes no stream in {common}")
    protocol = described[0]

    results: dict[str, Any] = {"cameraStreamProtocol": protocol}
    if protocol == WEBRTC:
        webrtc = source[WEBRTC]
        results["cameraStreamSignalingUrl"] = webrtc["signalingUrl"]
        if "offer" in webrtc:
            results["cameraStreamOffer"] = webrtc["offer"]
        if "iceServers" in webrtc:
            servers = webrtc["iceServers"]
            results["cameraStreamIceServers"] = servers if isinstance(servers, str) else json.dumps(servers)
    else:
        results["cameraStreamAccessUrl"] = source["accessUrls"][protocol]
        if params["StreamToChromecast"] and "receiverAppId" in source:
            results["cameraStreamReceiverAppId"] = source["receiverAppId"]
    # Without a token of its own, Google uses the user's OAuth access token (Google's CameraStream docs).
    if attributes.get("cameraStreamNeedAuthToken") is True and "authToken" in source:
        results["cameraStreamAuthToken"] = source["authToken"]
    return results


@register
class CameraStream(Trait):
    name = "CameraStream"
    attributes_schema = obj(
        {
            "cameraStreamSupportedProtocols": array(_PROTOCOL, min_items=1, uniqueItems=True),
            "cameraStreamNeedAuthToken": BOOLEAN,
            # Deprecated in Google's documentation but still accepted there, so devices that send it register.
            "cameraStreamNeedDrmEncryption": BOOLEAN,
        },
        required=("cameraStreamSupportedProtocols", "cameraStreamNeedAuthToken"),
    )

    @command(
        "GetCameraStream",
        params=obj(
            {"StreamToChromecast": BOOLEAN, "SupportedStreamProtocols": array(_PROTOCOL)},
            required=("StreamToChromecast", "SupportedStreamProtocols"),
        ),
    )
    def get_stream(self, ctx: CommandContext) -> Effect:
        # CommandContext does not carry customData yet; read it where the fulfillment provides it.
        source = stream_source(ctx.custom_data)
        return Effect(results=stream_results(ctx.attributes, source, ctx.params))
