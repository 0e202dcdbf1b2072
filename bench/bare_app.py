"""The bare baseline: a minimal fulfillment written with the plain Firestore client, served like ours.

`functions-framework --source bench/bare_app.py --target fulfillment` serves it exactly as main.py's fulfillment
is served (same server, same threads). It does the least Firestore work an intent needs and answers the same
response shape, with the client's public accessors and no validation, no token cache and no retries:

    QUERY    one get_all of the token and the devices
    EXECUTE  the same, then one batch write of the new states with the read update times as preconditions
    SYNC     the token, the device collection (streamed), and the user's linked flag (one merge write)

A token is the hash of the bearer token as a document id under tokens/, as the project stores it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import functions_framework
from flask import Request
from google.cloud import firestore

# The fields a SYNC device object takes from the document (Google's SYNC device fields).
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
)

# Created at import, as a minimal app would: the client opens its channel on the first call.
db = firestore.Client()


def _answer(status: int, body: dict[str, Any]) -> tuple[str, int, dict[str, str]]:
    return json.dumps(body), status, {"Content-Type": "application/json"}


def _valid_token(snapshot: Any) -> bool:
    if not snapshot.exists:
        return False
    record = snapshot.to_dict() or {}
    expires = record.get("expiresAt")
    return (
        record.get("kind") == "at"  # an access token (functions/core/tokens.py)
        and not record.get("revoked")
        and isinstance(expires, dt.datetime)
        and expires > dt.datetime.now(dt.UTC)
    )


@functions_framework.http
def fulfillment(request: Request) -> tuple[str, int, dict[str, str]]:
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
    body = request.get_json(silent=True) or {}
    request_id = body.get("requestId", "")
    intent = body["inputs"][0]["intent"]
    token_ref = db.collection("tokens").document(hashlib.sha256(bearer.encode()).hexdigest())

    if intent == "action.devices.SYNC":
        token = token_ref.get()
        if not _valid_token(token):
            return _answer(401, {"error": "invalid_token"})
        user_id = str(token.get("agentUserId"))
        user = db.collection("users").document(user_id)
        devices = []
        for snapshot in user.collection("devices").stream():
            document = snapshot.to_dict() or {}
            devices.append({"id": snapshot.id, **{k: document[k] for k in SYNC_FIELDS if k in document}})
        user.set({"linked": True, "linkedAt": dt.datetime.now(dt.UTC)}, merge=True)
        return _answer(200, {"requestId": request_id, "payload": {"agentUserId": user_id, "devices": devices}})

    payload = body["inputs"][0]["payload"]
    if intent == "action.devices.QUERY":
        ids = [device["id"] for device in payload["devices"]]
    else:
        ids = [device["id"] for group in payload["commands"] for device in group["devices"]]
    user_id = _user_of(bearer)
    devices_ref = db.collection("users").document(user_id).collection("devices")
    refs = [devices_ref.document(device_id) for device_id in ids]
    by_path = {snapshot.reference.path: snapshot for snapshot in db.get_all([token_ref, *refs])}
    record = by_path.get(token_ref.path)
    if record is None or not _valid_token(record) or record.get("agentUserId") != user_id:
        return _answer(401, {"error": "invalid_token"})
    found = {ref.id: by_path[ref.path] for ref in refs if ref.path in by_path and by_path[ref.path].exists}

    if intent == "action.devices.QUERY":
        states: dict[str, dict[str, Any]] = {}
        for device_id, snapshot in found.items():
            state: dict[str, Any] = snapshot.get("state")
            states[device_id] = {"online": True, "status": "SUCCESS", **state}
        return _answer(200, {"requestId": request_id, "payload": {"devices": states}})

    # EXECUTE: the first command's params become the new states (the benchmark sends OnOff / BrightnessAbsolute).
    params = payload["commands"][0]["execution"][0]["params"]
    batch = db.batch()
    new_states = {}
    for device_id, snapshot in found.items():
        new_states[device_id] = {**snapshot.get("state"), **params}
        option = db.write_option(last_update_time=snapshot.update_time)
        batch.update(snapshot.reference, {"state": new_states[device_id]}, option=option)
    batch.commit()
    groups: dict[str, dict[str, Any]] = {}  # devices that end in the same states answer together, like ours
    for device_id, new_state in new_states.items():
        answer = {"online": True, **new_state}
        group = groups.setdefault(
            json.dumps(answer, sort_keys=True), {"ids": [], "status": "SUCCESS", "states": answer}
        )
        group["ids"].append(device_id)
    commands = list(groups.values())
    return _answer(200, {"requestId": request_id, "payload": {"commands": commands}})


def _user_of(bearer: str) -> str:
    """The user a token names (`kind.base64url(user).secret`), to address the devices in the same get_all."""
    import base64

    encoded = bearer.split(".")[1] if bearer.count(".") == 2 else ""
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode(errors="replace") or "-"
