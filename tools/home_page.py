"""The Google Home page of the local stack, served by the HomeGraph stand-in at http://127.0.0.1:8090/.

What Google holds for each user it knows (linked or not any more): their devices by room, with name, type, traits and
the last state Google has (from QUERY after SYNC, and from Report State); the last calls in both directions with
their bodies on demand; the notifications and follow-ups. It updates itself as reports arrive, and its controls act
as Google: turn on and off, set brightness, lock and unlock (asking for the PIN or a confirmation when the
fulfillment asks for one), any other command, SYNC, QUERY, link and unlink. Each control sends the request the
`google ...` CLI sends (tools/google.py builds both) through the stand-in, which records it like every other call.

Rendered on the server (Jinja2 templates in tools/google_home/); the page's small script (no build step) long-polls
GET /standin/version and swaps in the re-rendered sections when something changed:

    GET  /                     the page
    GET  /page/homes           the homes section alone     GET /page/calls   the calls and notifications
    GET  /page/static/NAME     page.css, page.js
    POST /page/act             {"user", "action": execute|sync|query|link|unlink, ...}: JSON answer
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools import google, local_stack

if TYPE_CHECKING:
    from tools.homegraph_standin import StandIn

FILES = Path(__file__).resolve().parent / "google_home"
STATIC = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
SHOWN_CALLS = 40
SHOWN_NOTIFICATIONS = 20
MAX_SHOWN_BODY = 20_000  # characters of a request or answer shown in the page
NO_ROOM = "No room"
HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=UTF-8"

Answer = tuple[int, str, bytes]  # status, content type, body
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path d="M8 1 1 7h2v8h4v-5h2v5h4V7h2z" '
    b'fill="#1a73e8"/></svg>'
)


@cache
def _templates() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(FILES), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["short"] = _short
    environment.filters["json"] = _json_text
    environment.filters["clock"] = _clock
    environment.filters["iso"] = iso_time
    environment.filters["user"] = short_user
    environment.filters["words"] = _word_breaks
    return environment


def _word_breaks(name: Any) -> Any:
    """A camelCase state name that may wrap between its words (thermostatTemperature|Ambient), escaped."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"(?<=[a-z])(?=[A-Z])", "<wbr>", str(escape(name))))  # noqa: S704 - escaped just above


def iso_time(epoch_s: float | None) -> str:
    return local_stack.iso_time(epoch_s) or ""


def _clock(epoch_s: float | None) -> str:
    """The local time of day, to the millisecond (the full ISO time is in the element's title)."""
    if epoch_s is None:
        return ""
    return dt.datetime.fromtimestamp(epoch_s).strftime("%H:%M:%S.%f")[:-3]


def short_user(agent_user_id: Any) -> str:
    """Generated agentUserIds are 32 characters: their start tells them apart (the full id is in a title)."""
    text = str(agent_user_id or "")
    return text if len(text) <= 14 else text[:10] + "…"


def _short(name: Any) -> str:
    """action.devices.traits.OnOff -> OnOff, action.devices.types.LIGHT -> LIGHT."""
    return str(name).rsplit(".", 1)[-1]


def _json_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
    if len(text) <= MAX_SHOWN_BODY:
        return text
    return text[:MAX_SHOWN_BODY] + "\n... (cut; `google calls --body` has it all)"


# What the page shows


def device_ids_of(call: Mapping[str, Any]) -> list[str]:
    """The devices a recorded call is about: the ones an intent names or answers, or a report carries."""
    request: dict[str, Any] = call["request"] if isinstance(call.get("request"), dict) else {}
    found: list[str] = []
    payload: dict[str, Any] = request["payload"] if isinstance(request.get("payload"), dict) else {}
    devices = payload.get("devices")
    if isinstance(devices, dict):  # reportStateAndNotification
        for part in ("states", "notifications"):
            found += [str(d) for d in (devices.get(part) or {})]
    for single in request.get("inputs") or []:
        inner = single.get("payload") if isinstance(single, dict) else None
        if not isinstance(inner, dict):
            continue
        found += [str(d.get("id")) for d in inner.get("devices") or [] if isinstance(d, dict)]
        for command in inner.get("commands") or []:
            found += [str(d.get("id")) for d in (command.get("devices") or []) if isinstance(d, dict)]
    response = call.get("response")
    answered = ((response.get("payload") or {}).get("devices")) if isinstance(response, dict) else None
    if isinstance(answered, list):  # a SYNC answer
        found += [str(d.get("id")) for d in answered if isinstance(d, dict)]
    return list(dict.fromkeys(found))


def outcome_of(call: Mapping[str, Any]) -> str:
    """In a word or two: the HTTP status, and for fulfillment answers what Google reads in them."""
    status = call.get("status")
    if status is None:
        return f"no answer: {call.get('error', '')}"[:120]
    response = call.get("response")
    payload = response.get("payload") if isinstance(response, dict) else None
    if status != 200 or not isinstance(payload, dict):
        if isinstance(response, dict) and isinstance(response.get("error"), dict):
            return f"{status} {response['error'].get('status', '')}".strip()
        return str(status)
    if payload.get("errorCode"):
        return f"200 {payload['errorCode']}"
    if isinstance(payload.get("commands"), list):
        results = []
        for command in payload["commands"]:
            challenge = (command.get("challengeNeeded") or {}).get("type")
            results.append(str(challenge or command.get("errorCode") or command.get("status")))
        return "200 " + ", ".join(dict.fromkeys(results))
    devices = payload.get("devices")
    if isinstance(devices, list):
        return f"200, {len(devices)} devices"
    if isinstance(devices, dict):
        errors = sum(1 for d in devices.values() if isinstance(d, dict) and d.get("status") == "ERROR")
        return f"200, {len(devices)} devices" + (f", {errors} ERROR" if errors else "")
    return "200"


def is_failure(call: Mapping[str, Any]) -> bool:
    outcome = outcome_of(call)
    return not outcome.startswith("200") or any(
        word in outcome for word in ("ERROR", "Needed", "protocolError", "deviceNotFound")
    )


def direction_of(call: Mapping[str, Any]) -> str:
    if str(call.get("method", "")).startswith("fulfillment."):
        return "Google → fulfillment"
    return "backend → HomeGraph"


def _last_reports(calls: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """When each (user, device) was last reported (an accepted reportStateAndNotification naming it)."""
    last: dict[tuple[str, str], float] = {}
    for call in calls:
        if call.get("method") == "reportStateAndNotification" and call.get("status") == 200:
            for device_id in device_ids_of(call):
                last[(str(call.get("agentUserId")), device_id)] = float(call.get("at") or 0)
    return last


def _controls(device: Mapping[str, Any], states: Mapping[str, Any]) -> dict[str, Any]:
    """Which of the page's ready-made controls fit the device (the other commands have the generic form)."""
    traits = {_short(t) for t in device.get("traits") or []}
    return {
        "onoff": "OnOff" in traits,
        "on": bool(states.get("on")),
        "brightness": "Brightness" in traits,
        "brightness_value": int(states.get("brightness") or 0) if isinstance(states.get("brightness"), int) else 0,
        "lock": "LockUnlock" in traits,
        "locked": bool(states.get("isLocked")),
    }


def homes(standin: StandIn) -> list[dict[str, Any]]:
    """Per user Google knows: linked or not, and the devices by room with their states and controls."""
    last_reports = _last_reports(standin.calls())
    shown = []
    for agent_user_id in standin.users():
        user = standin.user(agent_user_id)
        if user is None:
            continue
        states = user.get("states") or {}
        rooms: dict[str, list[dict[str, Any]]] = {}
        for device in sorted(user.get("devices") or [], key=lambda d: str((d.get("name") or {}).get("name", ""))):
            device_id = str(device.get("id"))
            device_states = dict(states.get(device_id) or {})
            rooms.setdefault(str(device.get("roomHint") or NO_ROOM), []).append(
                {
                    "id": device_id,
                    "name": (device.get("name") or {}).get("name") or device_id,
                    "type": _short(device.get("type", "")),
                    "traits": [_short(t) for t in device.get("traits") or []],
                    "states": {k: v for k, v in sorted(device_states.items()) if k != "online"},
                    "online": device_states.get("online", True) is not False,
                    "reported_at": last_reports.get((agent_user_id, device_id)),
                    "controls": _controls(device, device_states),
                }
            )
        shown.append(
            {
                "id": agent_user_id,
                "linked": user.get("linked"),
                "syncs": user.get("syncs"),
                "rooms": sorted(rooms.items(), key=lambda room: (room[0] == NO_ROOM, room[0])),
            }
        )
    return shown


def calls(standin: StandIn) -> list[dict[str, Any]]:
    shown = []
    for call in reversed(standin.calls()[-SHOWN_CALLS:]):
        at, finished = call.get("at"), call.get("finishedAt")
        shown.append(
            {
                **call,
                "direction": direction_of(call),
                "name": str(call.get("method", "")).removeprefix("fulfillment."),
                "devices": device_ids_of(call),
                "outcome": outcome_of(call),
                "failed": is_failure(call),
                "ms": round((finished - at) * 1000) if isinstance(at, float) and isinstance(finished, float) else None,
            }
        )
    return shown


def render(standin: StandIn, part: str = "page.html") -> str:
    return str(
        _templates()
        .get_template(part)
        .render(
            homes=homes(standin),
            calls=calls(standin),
            notifications=list(reversed(standin.notifications()[-SHOWN_NOTIFICATIONS:])),
            version=standin.version,
            fulfillment=standin.fulfillment_url,
        )
    )


# The controls: each one the request the CLI sends, through the stand-in (recorded, Google's view follows)


class BadAction(Exception):
    pass


def act(standin: StandIn, body: Mapping[str, Any]) -> dict[str, Any]:
    user, action = body.get("user"), body.get("action")
    if not isinstance(user, str) or not user:
        raise BadAction("user: an agentUserId is required")
    if action == "link":
        synced = standin.link(user, sync=True)
        return {"ok": synced, "message": "linked" if synced else f"linked; SYNC failed: {standin.sync_problem(user)}"}
    if action == "execute":
        device, command, params = body.get("device"), body.get("command"), body.get("params") or {}
        if not isinstance(device, str) or not isinstance(command, str) or not isinstance(params, dict):
            raise BadAction("execute needs device, command and params (an object)")
        pin = body.get("pin")
        request = google.command_request(
            [device],
            command,
            params,
            ack=body.get("ack") is True,
            pin=str(pin) if pin is not None else None,
            follow_up_token=body.get("followUpToken") or None,
        )
    elif action == "sync":
        request = google.sync_request()
    elif action == "query":
        known = standin.user(user) or {}
        request = google.query_request([str(d.get("id")) for d in known.get("devices") or []])
    elif action == "unlink":
        request = google.disconnect_request()
    else:
        raise BadAction("action: one of execute, sync, query, link, unlink")
    status, answer = standin.fulfill(user, request, caller="page")
    payload = answer.get("payload") if isinstance(answer, dict) else None
    commands = payload.get("commands") if isinstance(payload, dict) else None
    result = commands[0] if isinstance(commands, list) and commands else None
    ok = status == 200 and not (isinstance(payload, dict) and payload.get("errorCode"))
    if isinstance(result, dict) and result.get("status") not in ("SUCCESS", "PENDING"):
        ok = False
    return {"ok": ok, "status": status, "response": answer, "result": result}


def serve(standin: StandIn, http_method: str, path: str, raw: bytes) -> Answer | None:
    """The page's routes; None for a path that is not the page's."""
    if http_method == "GET" and path == "/favicon.ico":
        return 200, "image/svg+xml", FAVICON
    if http_method == "GET" and path in ("/", "/index.html"):
        return 200, HTML, render(standin).encode()
    if http_method == "GET" and path in ("/page/homes", "/page/calls"):
        return 200, HTML, render(standin, f"{path.rsplit('/', 1)[-1]}.html").encode()
    if http_method == "GET" and path.startswith("/page/static/"):
        name = path.rsplit("/", 1)[-1]
        if name not in STATIC:
            return 404, JSON, b'{"error": "no such file"}'
        return 200, STATIC[name], (FILES / name).read_bytes()
    if http_method == "POST" and path == "/page/act":
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise BadAction("the body must be a JSON object")
            return 200, JSON, json.dumps(act(standin, body)).encode()
        except (ValueError, BadAction) as problem:
            return 400, JSON, json.dumps({"ok": False, "message": str(problem)}).encode()
    return None
