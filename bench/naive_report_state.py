"""The benchmark's baseline: Report State the naive way, one HomeGraph call per state message.

Each message is stored (the device's state merged with the message's, like ours) and its states, limited to keys of
the device's traits so that Google accepts them, are sent at once in a call of their own: no deduplication, no
ordering by observedAt, no coalescing. Served by functions-framework like the real function
(--source bench/naive_report_state.py --target naive_report_state).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import functions_framework

from functions.core.device import parse_device
from functions.core.state_messages import InvalidMessage, StateMessage, parse
from functions.platform.firestore import DEVICES, USERS, client
from functions.platform.homegraph import default_client


@functions_framework.cloud_event
def naive_report_state(event: Any) -> None:
    message = event.data["message"]
    try:
        parsed = parse(base64.b64decode(message["data"]), message.get("attributes"), 2**62)
    except InvalidMessage:
        return
    if not isinstance(parsed, StateMessage):
        return
    ref = client().collection(USERS).document(parsed.agent_user_id).collection(DEVICES).document(parsed.device_id)
    snapshot = ref.get()
    if not snapshot.exists:
        return
    device = parse_device(parsed.device_id, snapshot.to_dict() or {})
    after = device.with_state(parsed.states)
    ref.update({"state": after.state})
    keys = device.reportable_keys()
    states = {key: value for key, value in parsed.states.items() if key in keys}
    body = {
        "requestId": uuid.uuid4().hex,
        "agentUserId": parsed.agent_user_id,
        "payload": {"devices": {"states": {parsed.device_id: states}}},
    }
    default_client().report_state_and_notification(body)
