"""The one place events are decoded: Pub/Sub push envelopes, and Firestore document events
(google.cloud.firestore.document.v1.*) into plain Python values.

Eventarc delivers `DocumentEventData` (google-events) as protobuf (`application/protobuf`) or, when the trigger
asks for it, as JSON. The Firestore emulator sends the protobuf base64-encoded as text while still saying
application/protobuf; all three are accepted. google-events loads only when an event is decoded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.times import parse_time_ms

_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\r\n]+$")


class MalformedEvent(ValueError):
    """The event's data is not a DocumentEventData in any accepted encoding."""


@dataclass(frozen=True)
class DocumentChange:
    document: str  # the resource name: projects/P/databases/D/documents/...
    before: dict[str, Any] | None  # None: the document did not exist (created)
    after: dict[str, Any] | None  # None: the document no longer exists (deleted)
    after_update_us: int | None  # the new version's update (= commit) time, microseconds since the epoch


def decode(data: bytes | str | Mapping[str, Any] | None) -> DocumentChange:
    from google.events.cloud.firestore import DocumentEventData

    if data is None:
        raise MalformedEvent("the event has no data")
    if isinstance(data, Mapping):
        try:
            event = DocumentEventData.from_json(json.dumps(data), ignore_unknown_fields=True)
        except Exception as problem:
            raise MalformedEvent(f"not a DocumentEventData in JSON: {problem}") from problem
        return _change(DocumentEventData.pb(event))
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if not raw:
        raise MalformedEvent("the event has no data")
    candidates = []
    if _BASE64.match(raw):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(raw, validate=False))
    candidates.append(raw)
    for candidate in candidates:
        try:
            message = DocumentEventData.pb(DocumentEventData.deserialize(candidate))
        except Exception:  # noqa: S112 - the next encoding is tried
            continue
        if message.HasField("value") or message.HasField("old_value"):
            return _change(message)
    raise MalformedEvent("not a DocumentEventData (protobuf, base64 protobuf or JSON)")


def _change(message: Any) -> DocumentChange:
    has_after = message.HasField("value") and bool(message.value.name)
    has_before = message.HasField("old_value") and bool(message.old_value.name)
    if not has_after and not has_before:
        raise MalformedEvent("the event names no document")
    name = message.value.name if has_after else message.old_value.name
    update = message.value.update_time if has_after else None
    return DocumentChange(
        document=name,
        before=_fields(message.old_value.fields) if has_before else None,
        after=_fields(message.value.fields) if has_after else None,
        after_update_us=update.seconds * 1_000_000 + update.nanos // 1000 if update is not None else None,
    )


def _fields(fields: Any) -> dict[str, Any]:
    return {key: _value(value) for key, value in fields.items()}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "map_value":
        return _fields(value.map_value.fields)
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "timestamp_value":
        stamp = value.timestamp_value
        return dt.datetime.fromtimestamp(stamp.seconds, tz=dt.UTC) + dt.timedelta(microseconds=stamp.nanos // 1000)
    if kind == "geo_point_value":
        return {"latitude": value.geo_point_value.latitude, "longitude": value.geo_point_value.longitude}
    return getattr(value, kind)  # boolean, integer, double, string, bytes, reference


class UndecodableMessage(ValueError):
    """The Pub/Sub message's data is not base64: `raw` is the data as it came, `message_id` the message's id."""

    def __init__(self, reason: str, raw: bytes, message_id: str) -> None:
        super().__init__(reason)
        self.raw = raw
        self.message_id = message_id


class PubSubEnvelope:
    """The Pub/Sub message inside a google.cloud.pubsub.topic.v1.messagePublished CloudEvent."""

    def __init__(self, event: Any) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        found = data.get("message")
        message: dict[str, Any] = found if isinstance(found, dict) else {}
        encoded = message.get("data") or ""
        raw = encoded.encode(errors="replace") if isinstance(encoded, str) else str(encoded).encode()
        # The message id is the same on every redelivery: what makes a redelivered message recognisable.
        self.message_id = str(message.get("messageId") or message.get("message_id") or _attribute(event, "id") or "")
        try:
            self.data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError, TypeError) as problem:
            message_id = self.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
            raise UndecodableMessage("the Pub/Sub message data is not base64", raw, message_id) from problem
        if not self.message_id:
            self.message_id = "sha256:" + hashlib.sha256(self.data).hexdigest()
        attributes = message.get("attributes")
        self.attributes = {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        published = message.get("publishTime") or message.get("publish_time") or _attribute(event, "time")
        try:
            self.published_ms = parse_time_ms(str(published))
        except ValueError:
            self.published_ms = int(time.time() * 1000)


def _attribute(event: Any, name: str) -> Any:
    try:
        return event[name]
    except (KeyError, TypeError):
        return None
