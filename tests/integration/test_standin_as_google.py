"""The HomeGraph stand-in playing Google toward the real fulfillment (over HTTP, on the Firestore emulator): the token
it holds per user, the intents it sends for the CLI and the page, and the Google Home page's data and controls."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import REPO_ROOT
from tools import google, home_page
from tools.homegraph_standin import FirestoreTokenSource, StandIn
from tools.pubsub_local import ServedFunction

pytestmark = pytest.mark.emulator

LAMP = {
    "id": "lamp-1",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff", "action.devices.traits.Brightness"],
    "name": {"name": "Desk lamp"},
    "roomHint": "Office",
    "willReportState": True,
}
PLUG = {
    "id": "plug-1",
    "type": "action.devices.types.OUTLET",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Kettle plug"},
    "willReportState": True,
}


@pytest.fixture(scope="module")
def fulfillment(firestore_emulator: Any, pubsub_emulator: Any) -> Iterator[ServedFunction]:
    import functions_framework

    function = ServedFunction(functions_framework.create_app(target="fulfillment", source=str(REPO_ROOT / "main.py")))
    yield function
    function.stop()


@pytest.fixture
def google_side(
    homegraph_standin: StandIn, fulfillment: ServedFunction, firestore_db: Any, add_devices: Callable[..., None]
) -> StandIn:
    homegraph_standin.fulfillment_url = fulfillment.url + "/"
    homegraph_standin.token_source = FirestoreTokenSource(firestore_db)
    add_devices("alice", [LAMP, PLUG])
    return homegraph_standin


def test_a_user_who_disconnected_elsewhere_links_again_with_a_new_token(
    google_side: StandIn, issue_token: Callable[..., str]
) -> None:
    """After `google disconnect` (its own token, straight to the fulfillment), `google link` said "synced": false:
    the stand-in kept the token it had minted, which DISCONNECT had deleted with every other, so its SYNC got 401."""
    assert google_side.link("alice")
    elsewhere = urllib.request.Request(  # noqa: S310 - the local fulfillment
        google_side.fulfillment_url or "",
        data=json.dumps(google.disconnect_request()).encode(),
        headers={"Authorization": f"Bearer {issue_token('alice')}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(elsewhere, timeout=30) as response:  # noqa: S310
        assert response.status == 200
    assert google_side.link("alice"), google_side.sync_problem("alice")
    assert google_side.sync_problem("alice") is None
    assert [c["status"] for c in google_side.calls("fulfillment.SYNC", "alice")] == [200, 200]


def test_a_disconnect_google_sends_unlinks_the_user_and_drops_the_token(google_side: StandIn) -> None:
    assert google_side.link("alice")
    status, answer = google_side.fulfill("alice", google.disconnect_request())
    assert (status, answer) == (200, {})
    user = google_side.user("alice")
    assert user is not None
    assert user["linked"] is False, "Google forgets a user who unlinked"
    # A later intent gets a token minted anew: the old one was revoked and would only get 401s.
    status, answer = google_side.fulfill("alice", google.sync_request())
    assert status == 200
    assert [c["status"] for c in google_side.calls("fulfillment.DISCONNECT", "alice")] == [200]


def test_a_sync_sent_through_the_standin_updates_what_google_knows(
    google_side: StandIn, add_devices: Callable[..., None]
) -> None:
    assert google_side.link("alice")
    add_devices("alice", [{**PLUG, "id": "plug-2", "name": {"name": "Second plug"}}])
    status, _ = google_side.fulfill("alice", google.sync_request(), caller="cli")
    assert status == 200
    user = google_side.user("alice")
    assert user is not None
    assert {d["id"] for d in user["devices"]} == {"lamp-1", "plug-1", "plug-2"}
    [sync] = [c for c in google_side.calls("fulfillment.SYNC", "alice") if c["caller"] == "cli"]
    assert sync["status"] == 200


def test_the_page_shows_devices_by_room_and_its_controls_send_the_cli_s_intents(google_side: StandIn) -> None:
    assert google_side.link("alice")
    [home] = home_page.homes(google_side)
    assert home["id"] == "alice"
    assert home["linked"] is True
    rooms = dict(home["rooms"])
    assert [d["id"] for d in rooms["Office"]] == ["lamp-1"]
    assert [d["id"] for d in rooms[home_page.NO_ROOM]] == ["plug-1"]
    lamp = rooms["Office"][0]
    assert lamp["traits"] == ["OnOff", "Brightness"]
    assert lamp["controls"]["onoff"]
    assert lamp["controls"]["brightness"]
    assert not lamp["controls"]["lock"]

    answer = home_page.act(
        google_side,
        {"user": "alice", "action": "execute", "device": "lamp-1", "command": "OnOff", "params": {"on": True}},
    )
    assert answer["ok"] is True, answer
    [execute] = google_side.calls("fulfillment.EXECUTE", "alice")
    assert execute["caller"] == "page"
    sent = execute["request"]["inputs"][0]["payload"]["commands"]
    expected = google.command_request(["lamp-1"], "OnOff", {"on": True})["inputs"][0]["payload"]["commands"]
    assert sent == expected, "the page sends what `google execute` sends"
    with pytest.raises(home_page.BadAction):
        home_page.act(google_side, {"user": "alice", "action": "explode"})

    page = home_page.render(google_side)
    assert "Desk lamp" in page
    assert "Office" in page
    assert "Turn on" in page
    assert "EXECUTE" in page, "the call just made is listed"


def test_the_version_long_poll_answers_as_soon_as_something_changes(google_side: StandIn) -> None:
    version = google_side.version
    assert google_side.wait_for_change(version, 0.05) == version
    threading.Timer(0.3, lambda: google_side.link("alice", sync=False)).start()
    started = time.monotonic()
    with urllib.request.urlopen(  # noqa: S310 - the local stand-in
        f"{google_side.url}/standin/version?after={version}&timeoutS=10", timeout=15
    ) as response:
        answered = json.loads(response.read())["version"]
    assert answered > version
    assert time.monotonic() - started < 5
