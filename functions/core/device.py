"""A device as stored at users/{agentUserId}/devices/{deviceId}: Google's SYNC device object plus its state.

Document layout (device clouds integrate by writing it):
    type, traits, name, willReportState, roomHint, deviceInfo, attributes, customData, otherDeviceIds,
    notificationSupportedByAgent   -- Google's SYNC device fields, as Google defines them
    matterUniqueId, matterOriginalVendorId, matterOriginalProductId
                                   -- a device also on Matter: the three together, and roomHint, make Google show
                                      it once (developers.home.google.com/matter/device-deduplication)
    state                          -- current states of all traits (e.g. {"on": true, "brightness": 40})
    online                         -- whether the device is reachable (default true)
Other modules may keep bookkeeping fields in the document; they are listed in INTERNAL_FIELDS.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core import json_values
from functions.core import traits as trait_registry
from functions.core.challenges import config_problems as challenge_config_problems
from functions.core.device_types import DEVICE_TYPES
from functions.core.errors import InvalidDevice
from functions.core.ids import id_problem
from functions.core.schema import BOOLEAN, NON_EMPTY_STRING, STRING, array, obj
from functions.core.schema import errors as schema_errors
from functions.core.traits.base import Trait

TYPE_PREFIX = "action.devices.types."

# Matter deduplication: the Basic Information cluster's UniqueID (at most 32 characters), VendorID and ProductID
# (16 bits each, as hexadecimal text such as "0xfff1"); Google needs all three and the device's roomHint.
MATTER_FIELDS = ("matterUniqueId", "matterOriginalVendorId", "matterOriginalProductId")
_MATTER_ID = {"type": "string", "pattern": "^0x[0-9A-Fa-f]{1,4}$"}
# Fields of Google's SYNC device object (besides `id`), in the order Google documents them.
SYNC_FIELDS = (
    "type",
    "traits",
    "name",
    "willReportState",
    "notificationSupportedByAgent",
    "roomHint",
    "deviceInfo",
    "attributes",
    "customData",
    "otherDeviceIds",
    *MATTER_FIELDS,
)
# Who carries out the device's commands (the `backend` field; functions/core/commands.py).
BACKENDS = ("virtual", "pubsub", "webhook")
DEVICE_FIELDS = ("state", "online")
# Bookkeeping kept in the document by the backend itself; never sent to Google.
# reportSeq: counts the Report State pipeline's own state writes (functions/reporting/pipeline.py).
INTERNAL_FIELDS: frozenset[str] = frozenset({"updatedAt", "challenges", "backend", "reportSeq"})

_DEFINITION_SCHEMA = obj(
    {
        "id": NON_EMPTY_STRING,
        "type": STRING,
        "traits": array(STRING, min_items=1, uniqueItems=True),
        "name": obj(
            {"name": NON_EMPTY_STRING, "defaultNames": array(STRING), "nicknames": array(STRING)},
            required=("name",),
        ),
        "willReportState": BOOLEAN,
        "notificationSupportedByAgent": BOOLEAN,
        "roomHint": STRING,
        "deviceInfo": obj(
            {"manufacturer": STRING, "model": STRING, "hwVersion": STRING, "swVersion": STRING},
        ),
        "attributes": {"type": "object"},
        "customData": {"type": "object"},
        "otherDeviceIds": array(obj({"agentId": STRING, "deviceId": NON_EMPTY_STRING}, required=("deviceId",))),
        "matterUniqueId": {"type": "string", "minLength": 1, "maxLength": 32},
        "matterOriginalVendorId": _MATTER_ID,
        "matterOriginalProductId": _MATTER_ID,
        "state": {"type": "object"},
        "online": BOOLEAN,
        **{name: {} for name in INTERNAL_FIELDS},
    },
    required=("type", "traits", "name", "willReportState"),
)


@dataclass(frozen=True)
class Device:
    id: str
    definition: Mapping[str, Any]  # the SYNC fields, validated
    state: Mapping[str, Any] = field(default_factory=dict)
    online: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)  # the document's INTERNAL_FIELDS, never sent to Google

    @property
    def type(self) -> str:
        return str(self.definition["type"])

    @property
    def trait_names(self) -> list[str]:
        return list(self.definition["traits"])

    @property
    def traits(self) -> list[Trait]:
        return [t for t in (trait_registry.get(name) for name in self.trait_names) if t is not None]

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.definition.get("attributes") or {}

    @property
    def will_report_state(self) -> bool:
        return bool(self.definition.get("willReportState"))

    @property
    def notifications_supported(self) -> bool:
        return bool(self.definition.get("notificationSupportedByAgent"))

    def sync_view(self) -> dict[str, Any]:
        """The device object Google gets in a SYNC response.

        The view shares its nested values with the device (no copy: a SYNC of a thousand devices would spend a
        third of its time copying); it is for serializing, not for changing.
        """
        view: dict[str, Any] = {"id": self.id}
        for name in SYNC_FIELDS:
            if name in self.definition:
                view[name] = self.definition[name]
        attributes = dict(view.get("attributes") or {})
        for trait in self.traits:
            attributes.update(trait.explicit_attributes(attributes))
        view["attributes"] = attributes
        return view

    def query_states(self) -> dict[str, Any]:
        """Every trait's reportable state (no `online`, no `status`)."""
        states: dict[str, Any] = {}
        for trait in self.traits:
            states.update(trait.query_states(self.attributes, self.state))
        return states

    def with_state(self, changes: Mapping[str, Any]) -> Device:
        """This device after `changes`; a None value removes its key; keys no trait reports are not kept.

        Each trait then applies what the changes imply (`Trait.normalize_state`: a jammed lock no longer knows
        whether it is locked), before anything validates the result.
        """
        keys = self.reportable_keys()
        reported = {k: v for k, v in changes.items() if k in keys}
        merged = {**self.state, **reported}
        merged = {k: v for k, v in merged.items() if v is not None}
        for trait in self.traits:
            merged = trait.normalize_state(self.attributes, merged, reported)
        return Device(self.id, self.definition, merged, self.online, self.settings)

    def reportable_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        for trait in self.traits:
            keys |= trait.state_keys(self.attributes)
        return frozenset(keys)


def normalize_type(value: str) -> str:
    return value if value.startswith(TYPE_PREFIX) else TYPE_PREFIX + value.upper()


def normalize_trait(value: str) -> str:
    return value if value.startswith(trait_registry.TRAIT_PREFIX) else trait_registry.TRAIT_PREFIX + value


def device_id_problem(device_id: Any) -> str | None:
    return id_problem(device_id, "id")


def parse_device(device_id: str, document: Mapping[str, Any]) -> Device:
    """Validates a stored or submitted device document; raises InvalidDevice naming every problem."""
    problems = definition_problems(device_id, document)
    if problems:
        raise InvalidDevice(f"device {device_id!r}: " + "; ".join(problems))
    definition = {key: document[key] for key in SYNC_FIELDS if key in document}
    if "customData" in definition:
        definition["customData"] = times_as_text(definition["customData"])
    return Device(
        id=device_id,
        definition=definition,
        state=dict(document.get("state") or {}),
        online=bool(document.get("online", True)),
        settings={key: document[key] for key in INTERNAL_FIELDS if key in document},
    )


def definition_problems(device_id: str, document: Mapping[str, Any]) -> list[str]:
    id_problem = device_id_problem(device_id)
    if id_problem:
        return [id_problem]
    if not isinstance(document, Mapping):
        return ["a device must be a JSON object"]
    not_json = _non_json_field(document)
    if not_json:
        return [not_json]
    problems = schema_errors(_DEFINITION_SCHEMA, dict(document))
    if "id" in document and document["id"] != device_id:
        problems.append(f"id: {document['id']!r} differs from the document id {device_id!r}")
    problems.extend(_matter_problems(document))
    if problems:
        return problems

    device_type = document["type"]
    if device_type not in DEVICE_TYPES:
        problems.append(f"type: {device_type!r} is not one of Google's device types (action.devices.types.*)")
    traits: list[Trait] = []
    for name in document["traits"]:
        trait = trait_registry.get(name) if name.startswith(trait_registry.TRAIT_PREFIX) else None
        if trait is None:
            problems.append(f"traits: {name!r} is not a supported trait (action.devices.traits.*)")
        else:
            traits.append(trait)
    if problems:
        return problems

    present = {t.name for t in traits}
    missing = [name for name in DEVICE_TYPES[device_type].required_traits if name not in present]
    if missing:
        problems.append(f"traits: {device_type} requires {', '.join(missing)}")

    attributes = document.get("attributes") or {}
    owned = set().union(*(t.attribute_keys() for t in traits))
    for key in sorted(set(attributes) - owned):
        problems.append(f"attributes.{key}: not an attribute of any of this device's traits")
    for trait in traits:
        problems.extend(trait.attribute_errors(attributes))

    problems.extend(_state_problems(traits, attributes, document.get("state") or {}))
    if "challenges" in document:
        problems.extend(challenge_config_problems(document["challenges"], traits))
    return problems


def _state_problems(traits: Sequence[Trait], attributes: Mapping[str, Any], state: Mapping[str, Any]) -> list[str]:
    problems = []
    reportable = set().union(*(t.state_keys(attributes) for t in traits))
    for key in sorted(set(state) - reportable):
        problems.append(f"state.{key}: not a state of any of this device's traits")
    for trait in traits:
        problems.extend(trait.state_errors(attributes, state))
    return problems


def state_problems(device: Device, state: Mapping[str, Any]) -> list[str]:
    """How the document of a valid `device` would be invalid with `state` instead of its own (all a state write
    can break); empty when it stays valid."""
    not_json = json_values.problem(state, "state")
    if not_json:
        return [not_json]
    if not isinstance(state, dict):
        return ["state: must be an object"]
    return _state_problems(device.traits, device.attributes, state)


def _matter_problems(document: Mapping[str, Any]) -> list[str]:
    """Google deduplicates a device that is also on Matter by the three Matter fields together, in a room."""
    given = [name for name in MATTER_FIELDS if name in document]
    if not given:
        return []
    problems = [
        f"{name}: required with {', '.join(given)} (Matter deduplication)"
        for name in MATTER_FIELDS
        if name not in given
    ]
    if not str(document.get("roomHint") or "").strip():
        problems.append(f"roomHint: required with {', '.join(given)} (Google deduplicates Matter devices by room)")
    return problems


def _non_json_field(document: Mapping[str, Any]) -> str | None:
    """The first field Google would get that is not a JSON value (bookkeeping fields are never sent: not checked).

    A timestamp in customData (e.g. a device cloud's `lastSeen` written as SERVER_TIMESTAMP) is sent as RFC 3339
    text; any other platform value (timestamps elsewhere, bytes, GeoPoints, references) makes the document invalid.
    """
    for key in (*SYNC_FIELDS, *DEVICE_FIELDS):
        if key in document:
            value = times_as_text(document[key]) if key == "customData" else document[key]
            found = json_values.problem(value, key)
            if found:
                return found
    return None


def times_as_text(value: Any) -> Any:
    """`value` with every timestamp in it as RFC 3339 text (UTC, microseconds); the value itself when it has none."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, Mapping):
        converted = {key: times_as_text(item) for key, item in value.items()}
        return value if all(converted[k] is value[k] for k in value) else converted
    if isinstance(value, list):
        items = [times_as_text(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def new_device_document(device_id: str, submitted: Mapping[str, Any]) -> dict[str, Any]:
    """The document stored for a newly registered device: validated, with initial trait states filled in."""
    document = {key: copy.deepcopy(value) for key, value in submitted.items() if key != "id"}
    if document.get("backend", BACKENDS[0]) not in BACKENDS:
        # A stored unknown backend is read as the virtual device (logged); a new one is refused outright.
        raise InvalidDevice(
            f"device {device_id!r}: backend: {document['backend']!r} is not one of {', '.join(BACKENDS)}"
        )
    device = parse_device(device_id, document)
    state: dict[str, Any] = {}
    for trait in device.traits:
        keys = trait.state_keys(device.attributes)
        state.update({k: v for k, v in trait.initial_state(device.attributes).items() if k in keys})
    state.update(document.get("state") or {})
    document["state"] = state
    document.setdefault("online", True)
    parse_device(device_id, document)  # the initial states must be valid too
    return document
