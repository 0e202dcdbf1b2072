"""Faults the HomeGraph stand-in has no switch for, for the certify tests (Google's side going wrong):

  * dropped reports: the reports of chosen devices are lost (HomeGraph answers 200 and keeps nothing of them);
  * stuck states: HomeGraph answers chosen values for a device whatever it was told (stale data on its side).

`install()` patches tools/homegraph_standin.py in the process that runs the stack (the certify tests start the stack
through `python -c`, installing it first); the stand-in's control API then takes

    PUT /standin/test/dropped-devices  {"devices": ["kettle-plug", ...]}              ([] drops none again)
    PUT /standin/test/stuck-states     {"devices": {"hall-thermostat": {"key": value}}}  ({} unsticks them)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

DROPS_PATH = "/standin/test/dropped-devices"
STUCK_PATH = "/standin/test/stuck-states"
# The command line the stack runs under: it names tools.stack, as local_stack's record check expects.
STACK_WITH_DROPS = (
    "from tests.integration import standin_faults; standin_faults.install(); "
    "import runpy; runpy.run_module('tools.stack', run_name='__main__', alter_sys=True)"
)


def _without(body: dict[str, Any], dropped: set[str]) -> dict[str, Any] | None:
    """The report without the dropped devices' states; None if nothing is left to apply."""
    devices = (body.get("payload") or {}).get("devices") or {}
    states = devices.get("states")
    if not isinstance(states, dict) or not dropped & set(states):
        return body
    kept = copy.deepcopy(body)
    left = {device_id: value for device_id, value in states.items() if device_id not in dropped}
    if left:
        kept["payload"]["devices"]["states"] = left
        return kept
    del kept["payload"]["devices"]["states"]
    return kept if kept["payload"]["devices"].get("notifications") else None


def install() -> None:
    from tools import homegraph_standin

    report = homegraph_standin.StandIn._report_state_and_notification
    states = homegraph_standin.StandIn.states
    control = homegraph_standin._ControlApi.handle

    def dropping_report(self: Any, body: dict[str, Any]) -> dict[str, Any]:
        dropped: set[str] = getattr(self, "dropped_devices", set())
        kept = _without(body, dropped) if dropped else body
        if kept is None:
            return {"requestId": body.get("requestId", "")}
        result: dict[str, Any] = report(self, kept)
        return result

    def stuck_states(self: Any, agent_user_id: str) -> dict[str, dict[str, Any]]:
        held: dict[str, dict[str, Any]] = states(self, agent_user_id)
        for device_id, stuck in getattr(self, "stuck", {}).items():
            if device_id in held:
                held[device_id].update(stuck)
        return held

    def with_faults(self: Any, http_method: str, path: str, query: Mapping[str, list[str]], raw: bytes) -> Any:
        if (http_method, path) == ("PUT", DROPS_PATH):
            devices = json.loads(raw or b"{}").get("devices") or []
            self.standin.dropped_devices = {str(device) for device in devices}
            return 200, {"devices": sorted(self.standin.dropped_devices)}
        if (http_method, path) == ("PUT", STUCK_PATH):
            self.standin.stuck = dict(json.loads(raw or b"{}").get("devices") or {})
            return 200, {"devices": self.standin.stuck}
        return control(self, http_method, path, query, raw)

    homegraph_standin.StandIn._report_state_and_notification = dropping_report  # type: ignore[method-assign]
    homegraph_standin.StandIn.states = stuck_states  # type: ignore[method-assign]
    homegraph_standin._ControlApi.handle = with_faults  # type: ignore[method-assign]
