"""Decoding DocumentEventData: raw protobuf (Eventarc), base64 text (the emulator), JSON; every Firestore value."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from google.events.cloud.firestore import ArrayValue, Document, DocumentEventData, MapValue, Value
from google.protobuf import struct_pb2
from google.type import latlng_pb2

from functions.platform.events import DocumentChange, MalformedEvent, decode

NAME = "projects/p/databases/(default)/documents/users/alice/devices/lamp-1"
WHEN = dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=dt.UTC)


def document(**fields: Value) -> Document:
    return Document(name=NAME, fields=fields, update_time=WHEN, create_time=WHEN)


def every_kind() -> Document:
    return document(
        text=Value(string_value="Desk lamp"),
        count=Value(integer_value=7),
        ratio=Value(double_value=0.5),
        on=Value(boolean_value=True),
        nothing=Value(null_value=struct_pb2.NULL_VALUE),
        at=Value(timestamp_value=WHEN),
        raw=Value(bytes_value=b"\x00\x01"),
        ref=Value(reference_value="projects/p/databases/(default)/documents/users/alice"),
        where=Value(geo_point_value=latlng_pb2.LatLng(latitude=1.5, longitude=-2.25)),
        names=Value(array_value=ArrayValue(values=[Value(string_value="a"), Value(integer_value=2)])),
        name=Value(map_value=MapValue(fields={"name": Value(string_value="Lamp"), "nicknames": Value(array_value={})})),
    )


EXPECTED = {
    "text": "Desk lamp",
    "count": 7,
    "ratio": 0.5,
    "on": True,
    "nothing": None,
    "at": WHEN,
    "raw": b"\x00\x01",
    "ref": "projects/p/databases/(default)/documents/users/alice",
    "where": {"latitude": 1.5, "longitude": -2.25},
    "names": ["a", 2],
    "name": {"name": "Lamp", "nicknames": []},
}
WHEN_US = int(WHEN.timestamp()) * 1_000_000 + 123456


@pytest.mark.parametrize("encode", [lambda b: b, base64.b64encode, lambda b: base64.b64encode(b).decode()])
def test_an_update_in_any_encoding(encode: object) -> None:
    event = DocumentEventData(value=every_kind(), old_value=document(text=Value(string_value="old")))
    change = decode(encode(DocumentEventData.serialize(event)))  # type: ignore[operator]
    assert change == DocumentChange(NAME, {"text": "old"}, EXPECTED, WHEN_US)


def test_json_mode() -> None:
    event = DocumentEventData(value=every_kind())
    data = json.loads(DocumentEventData.to_json(event))
    assert decode(data) == DocumentChange(NAME, None, EXPECTED, WHEN_US)


def test_a_deletion_has_no_after() -> None:
    event = DocumentEventData(old_value=document(on=Value(boolean_value=False)))
    assert decode(DocumentEventData.serialize(event)) == DocumentChange(NAME, {"on": False}, None, None)


@pytest.mark.parametrize(
    "data",
    [None, b"", "", b"\xff\x00garbage", b"QUJD", b"not base64 at all!", {"value": 5}, {}],
)
def test_anything_else_is_malformed(data: object) -> None:
    with pytest.raises(MalformedEvent):
        decode(data)  # type: ignore[arg-type]


def test_an_event_without_a_document_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="names no document"):
        decode(DocumentEventData.serialize(DocumentEventData(value=Document(fields={"a": Value(integer_value=1)}))))
