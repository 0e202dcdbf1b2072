"""The README's way in, on a stack of this module's own (`python -m tools.stack`, as `make up` runs it): it comes up
talking, answers SYNC with the printed token, carries a device from Firestore to the HomeGraph stand-in (Request
Sync -> SYNC -> reported state) for a CLI that finds it by itself, lets a user who disconnected link again, and has
a Google Home page that drives a lamp in Chromium. Last, its life: the data, the secrets and the ports survive a
restart after the terminal closed (SIGHUP), nothing outlives a stack killed outright, its stale record is cleaned
up, and --fresh starts from nothing.

One stack serves every check but the last (a start takes seconds); the last test restarts it twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.schema_oracle import oracle
from tools import emulators, local_stack, stack

ROOT = Path(__file__).resolve().parents[2]
PROJECT = f"demo-stack-test-{os.getpid()}"  # its own, so a parallel run's emulators are not taken for ours
ARTIFACTS = ROOT / ".local-stack" / "test-logs"
SCREENSHOT = ROOT / "docs" / "images" / "google-home-page.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
pytestmark = pytest.mark.emulator

PORCH_LIGHT = {
    "id": "porch-light",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Porch light"},
    "willReportState": True,
}
READY = "Ctrl-C stops everything"


class StackRun:
    """One `python -m tools.stack` process; its output is read all along (a full pipe would block its terminal)."""

    def __init__(self, stack_dir: Path, *args: str, project: str = "") -> None:
        self.env = stack_environment(stack_dir, project or PROJECT)
        self.stack_dir = stack_dir
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.stack", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, marker: str, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while marker not in "".join(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._changed.wait(0.5)):
                    raise AssertionError(f"{marker!r} not seen; the stack's output so far:\n" + "".join(self.lines))
                self._changed.wait(min(remaining, 1))
        return self.output

    def record(self) -> dict[str, Any]:
        return dict(json.loads((self.stack_dir / "stack.json").read_text()))

    def ports(self) -> dict[str, int]:
        return {name: urllib.parse.urlsplit(url).port or 0 for name, url in self.record()["urls"].items()}

    def children(self) -> list[int]:
        return [int(child["pid"]) for child in self.record()["children"]]

    def end(self, signum: int = signal.SIGINT, timeout_s: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(30)  # the reader's last lines: it ends at the end of the output
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"local-stack-{self.process.pid}.txt").write_text(self.output)
        return code


def stack_environment(stack_dir: Path, project: str = PROJECT) -> dict[str, str]:
    """This machine's environment with the test's project and stack folder, and nothing naming an emulator."""
    env = {k: v for k, v in os.environ.items() if k not in (*local_stack.SHARED_ENV, "PUBSUB_PROJECT_ID")}
    return {**env, "GOOGLE_CLOUD_PROJECT": project, "LOCAL_STACK_DIR": str(stack_dir)}


def cli(run: StackRun, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The operators' CLI with no emulator and no project in its environment: it finds the stack by its record."""
    return subprocess.run(
        [sys.executable, "-m", "functions", *args],
        cwd=ROOT,
        env={**run.env, "GOOGLE_CLOUD_PROJECT": ""},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alive(pid: int) -> bool:
    return local_stack.command_line(pid) is not None


def all_gone(pids: list[int], timeout_s: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.2)
    return [pid for pid in pids if alive(pid)]


def java_of_this_test() -> list[str]:
    listed = subprocess.run(["pgrep", "-f", f"project.*{PROJECT}"], capture_output=True, text=True, check=False)
    return listed.stdout.split()


def post(url: str, body: Any, token: str) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


@dataclass
class Running:
    run: StackRun
    user: str
    password: str
    client_secret: str
    token: str
    urls: dict[str, str]
    taken_port: int | None
    started: list[int] = field(default_factory=list)

    @property
    def standin(self) -> str:
        return self.urls["homegraph stand-in"]

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return cli(self.run, *args, stdin=stdin)

    def calls(self, method: str, since: int = 0) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = get(f"{self.standin}/standin/calls?method={method}&agentUserId={self.user}")[
            "calls"
        ]
        return [c for c in found if c["seq"] > since]

    def last_seq(self) -> int:
        return max((c["seq"] for c in get(f"{self.standin}/standin/calls")["calls"]), default=0)


def banner_value(output: str, pattern: str) -> str:
    found = re.search(pattern, output)
    assert found, f"{pattern!r} not in the banner:\n{output}"
    return found.group(1)


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        emulators.firestore_jar()
        emulators.pubsub_jar()
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def running(stack_dir: Path) -> Iterator[Running]:
    # The fulfillment's default port is taken (by us, or by whatever else holds it): the stack takes another.
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken_port: int | None = None
    with contextlib.suppress(OSError):
        taken.bind((stack.HOST, stack.DEFAULT_PORTS["fulfillment"]))
        taken.listen()
        taken_port = stack.DEFAULT_PORTS["fulfillment"]
    run = StackRun(stack_dir)
    try:
        output = run.wait_for(READY)
        urls = run.record()["urls"]
        yield Running(
            run=run,
            user=banner_value(output, r"Demo user: (\S+)"),
            password=banner_value(output, r"sign-in demo@example\.com / (\S+);"),
            client_secret=banner_value(output, r"Account linking: client google / (\S+) "),
            token=banner_value(output, r"Access token \(24 h\): (\S+)"),
            urls=urls,
            taken_port=taken_port,
            started=run.children(),
        )
    finally:
        run.end()
        taken.close()


def test_it_comes_up_talking_and_answers_sync_with_the_printed_token(running: Running) -> None:
    output = running.run.output
    for piece in ("firestore emulator", "pubsub emulator", "homegraph stand-in", "fulfillment", "report_state"):
        assert re.search(rf"^  {re.escape(piece)}\s+http://\S+\s+up in\s+[\d.]+ s$", output, re.MULTILINE), piece
    assert re.search(r"Local stack is up in [\d.]+ s", output)
    assert f"Google Home page: {running.standin}/" in output
    if running.taken_port:
        assert not running.urls["fulfillment"].endswith(f":{running.taken_port}"), "a taken port is not reused"
    assert len(running.started) >= 7, "two emulators and five functions, each a process of its own"

    sync = {"requestId": "r1", "inputs": [{"intent": "action.devices.SYNC"}]}
    body = post(running.urls["fulfillment"], sync, running.token)
    oracle().assert_response("sync", body)
    assert body["payload"]["agentUserId"] == running.user
    assert len(body["payload"]["devices"]) >= 4
    # The demo user has linked: the stand-in ran SYNC and QUERY and holds the devices' states.
    linked = wait_for(lambda: get(f"{running.standin}/standin/users/{running.user}").get("states"), "SYNC and QUERY")
    assert "desk-lamp" in linked

    second = subprocess.run(
        [sys.executable, "-m", "tools.stack"], cwd=ROOT, env=running.run.env, capture_output=True, text=True
    )
    assert second.returncode == 1
    assert "already runs" in second.stdout


def test_the_round_trip_for_a_cli_that_finds_the_stack_itself(running: Running) -> None:
    before = running.last_seq()
    added = running.cli("devices", "add", "--user", running.user, "--file", "-", stdin=json.dumps(PORCH_LIGHT))
    assert added.returncode == 0, added.stderr

    request_sync = wait_for(lambda: running.calls("requestSync", before), "Request Sync after the device write")
    assert request_sync[0]["status"] == 200
    synced = wait_for(
        lambda: [c for c in running.calls("fulfillment.SYNC", before) if "porch-light" in json.dumps(c["response"])],
        "the SYNC Google runs on Request Sync",
    )
    oracle().assert_response("sync", synced[0]["response"])
    # (A report may come before Google has processed the SYNC and get 404: the pipeline then reports it again.)
    wait_for(
        lambda: [
            c
            for c in running.calls("reportStateAndNotification", before)
            if "porch-light" in c["request"]["payload"]["devices"].get("states", {}) and c["status"] == 200
        ],
        "the state report of the new device",
    )
    shown = running.cli("google", "state")  # the demo user's, as the README's first commands
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["devices"]["porch-light"]["states"]["online"] is True
    for first_steps in (("google", "sync"), ("google", "query")):
        done = running.cli(*first_steps)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["payload"]["devices"]

    turn_on = ("--command", "OnOff", "--params", '{"on": true}')
    executed = running.cli("google", "execute", "--user", running.user, "--id", "porch-light", *turn_on)
    assert executed.returncode == 0, executed.stdout + executed.stderr
    oracle().assert_response("execute", json.loads(executed.stdout))
    queried = running.cli("google", "query", "--user", running.user, "--id", "porch-light")
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout)["payload"]["devices"]["porch-light"]["on"] is True
    unknown = running.cli("google", "execute", "--user", running.user, "--id", "no-such-device", *turn_on)
    assert unknown.returncode == 1, "an ERROR result is a failure"
    assert "deviceNotFound" in unknown.stdout
    listed = running.cli("devices", "list", "--user", running.user)
    assert listed.returncode == 0, listed.stderr
    assert "porch-light" in {d["id"] for d in json.loads(listed.stdout)}

    # The terminal told it all, a line each: function, intent or event, user, devices, outcome, milliseconds.
    short_user = running.user[:8]
    for function, what, devices, outcome in (
        ("sync_on_device_change", "document.written", "porch-light", "200"),
        ("homegraph", "requestSync", "-", "200"),
        ("fulfillment", "EXECUTE", "porch-light", "200 SUCCESS"),
        ("fulfillment", "EXECUTE", "no-such-device", "200 deviceNotFound"),
    ):
        pattern = (
            rf"\d\d:\d\d:\d\d\.\d{{3}}  {function}\s+{what}\s+{short_user}\S*\s+{re.escape(devices)}\s+"
            rf"{outcome}\s+\d+ ms"
        )
        wait_for(lambda p=pattern: re.search(p, running.run.output), f"the terminal line {function} {what}", 10)


def test_a_user_who_disconnected_links_again_and_reaches_homegraph(running: Running) -> None:
    """`google disconnect` then `google link` said "synced": false, the device never reached HomeGraph again, and
    `google state` still said "linked": true."""
    disconnected = running.cli("google", "disconnect", "--user", running.user)
    assert disconnected.returncode == 0, disconnected.stderr
    state = running.cli("google", "state", "--user", running.user)
    assert json.loads(state.stdout)["linked"] is False
    before = running.last_seq()
    linked = running.cli("google", "link", "--user", running.user)
    assert linked.returncode == 0, linked.stdout + linked.stderr
    assert json.loads(linked.stdout) == {"agentUserId": running.user, "linked": True, "synced": True}
    reported = wait_for(
        lambda: [c for c in running.calls("reportStateAndNotification", before) if c["status"] == 200],
        "the full report after the new link's SYNC",
    )
    assert "desk-lamp" in reported[0]["request"]["payload"]["devices"]["states"]


def test_a_typo_is_not_a_new_user(running: Running) -> None:
    for args in (
        ("devices", "add", "--user", "not-a-user", "--file", "-"),
        ("token", "issue", "--user", "another-typo"),
        ("google", "sync", "--user", "nobody-typo"),
    ):
        done = running.cli(*args, stdin=json.dumps(PORCH_LIGHT))
        assert done.returncode == 1, done.stdout
        assert "has neither devices nor an account (a typo?); --create if it is a new user" in done.stderr
    assert running.cli("google", "state", "--user", "nobody-typo").returncode == 1, "Google never heard of it"


def test_follow_ups_notifications_and_bodies_from_the_cli(running: Running) -> None:
    before = running.last_seq()
    # Unlocking (the PIN answers the fulfillment's challenge) with Google's token: a command that completes later.
    unlock = ("--command", "LockUnlock", "--params", '{"lock": false}', "--pin", stack.DEMO_PIN)
    unlocked = running.cli(
        "google", "execute", "--user", running.user, "--id", "front-door", *unlock,
        "--follow-up-token", "follow-up-of-the-test",
    )  # fmt: skip
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    assert json.loads(unlocked.stdout)["payload"]["commands"][0]["status"] == "PENDING"

    def follow_up() -> list[dict[str, Any]]:
        shown = running.cli("google", "notifications", "--user", running.user)
        assert shown.returncode == 0, shown.stderr
        notes: list[dict[str, Any]] = json.loads(shown.stdout)
        return [n for n in notes if "followUpResponse" in n["notification"]]

    [note] = wait_for(follow_up, "the follow-up of the unlocking", 30)
    assert note["notification"]["followUpResponse"]["followUpToken"] == "follow-up-of-the-test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", note["at"]), "times are ISO"
    calls = running.cli("google", "calls", "--user", running.user, "--method", "fulfillment.EXECUTE", "--body")
    [execute] = [c for c in json.loads(calls.stdout) if c["seq"] > before]
    params = execute["request"]["inputs"][0]["payload"]["commands"][0]["execution"][0]["params"]
    assert params == {"lock": False, "followUpToken": "follow-up-of-the-test"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", execute["at"])
    assert execute["response"]["payload"]["commands"][0]["status"] == "PENDING"


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Chromium is not installed (Debian packages chromium and chromium-driver): run tools/setup.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000"):
            options.add_argument(flag)
        os.environ.setdefault("SE_OFFLINE", "true")  # the Debian driver is given: no look-up online
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def test_the_google_home_page_drives_a_lamp_and_shows_the_reported_state(running: Running, chromium: Any) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    def until(condition: Callable[[Any], Any], timeout_s: float = 30) -> Any:
        ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)  # navigation races
        return WebDriverWait(chromium, timeout_s, ignored_exceptions=ignored).until(condition)

    def card(device_id: str) -> Any:
        return chromium.find_element(By.CSS_SELECTOR, f".home[data-user='{running.user}'] [data-device='{device_id}']")

    def state_of(device_id: str, key: str) -> str:
        return str(card(device_id).find_element(By.CSS_SELECTOR, f"dd[data-state='{key}']").text)

    def click(device_id: str, xpath: str) -> None:
        """Clicks a control of the device's card (found again if the page swapped the card in the meantime)."""

        def clicked(driver: Any) -> bool:
            card(device_id).find_element(By.XPATH, xpath).click()
            return True

        until(clicked)

    chromium.get(running.standin + "/")
    until(lambda d: card("desk-lamp"))
    assert "Office" in chromium.find_element(By.ID, "homes").text, "devices are shown by room"
    lamp_on = state_of("desk-lamp", "on")
    wanted = "false" if lamp_on == "true" else "true"
    before = running.last_seq()
    click("desk-lamp", ".//button[starts-with(normalize-space(), 'Turn')]")
    # The page sent EXECUTE; the fulfillment wrote the state, report_state reported it, the page shows it: live.
    until(lambda d: state_of("desk-lamp", "on") == wanted)
    reports = [
        c
        for c in running.calls("reportStateAndNotification", before)
        if c["request"]["payload"]["devices"].get("states", {}).get("desk-lamp", {}).get("on") is (wanted == "true")
    ]
    assert reports, "the state shown is the reported one"
    [execute] = [c for c in running.calls("fulfillment.EXECUTE", before)]
    assert execute["caller"] == "page"

    # Brightness, through its slider.
    def set_brightness(driver: Any) -> bool:
        slider = card("desk-lamp").find_element(By.CSS_SELECTOR, "form.brightness input[name=brightness]")
        driver.execute_script("arguments[0].value = 35", slider)
        card("desk-lamp").find_element(By.CSS_SELECTOR, "form.brightness button").click()
        return True

    until(set_brightness)
    until(lambda d: state_of("desk-lamp", "brightness") == "35")

    # Unlocking the front door asks for its PIN, as Google does.
    if until(lambda d: state_of("front-door", "isLocked")) == "false":
        click("front-door", ".//button[normalize-space()='Lock']")
        until(lambda d: state_of("front-door", "isLocked") == "true")
    click("front-door", ".//button[normalize-space()='Unlock']")
    prompt = until(expected_conditions.alert_is_present())
    assert "PIN" in prompt.text
    prompt.send_keys(stack.DEMO_PIN)
    prompt.accept()
    until(lambda d: state_of("front-door", "isLocked") == "false")
    status = until(
        lambda d: d.find_element(By.ID, "status").text if "Front door" in d.find_element(By.ID, "status").text else None
    )
    assert "SUCCESS" in status, status

    # The calls in both directions, with their bodies on demand.
    calls = chromium.find_element(By.ID, "calls")
    until(lambda d: "EXECUTE" in calls.text and "reportStateAndNotification" in calls.text)
    first = calls.find_element(By.CSS_SELECTOR, "li.call details")
    first.find_element(By.TAG_NAME, "summary").click()
    until(lambda d: first.find_element(By.CSS_SELECTOR, ".bodies pre").is_displayed())

    check_layout(chromium)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium.save_screenshot(str(ARTIFACTS / "google-home-page.png"))
    if os.environ.get("SAVE_DOCS_SCREENSHOT"):  # the README's picture, taken again on purpose only
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        chromium.save_screenshot(str(SCREENSHOT))


def check_layout(chromium: Any) -> None:
    """The page's layout, from the boxes of its parts (not pixels): two columns side by side that fit the window,
    device cards that do not overlap and hold their controls, and a picture of the window's size."""
    from selenium.webdriver.common.by import By

    chromium.execute_script("window.scrollTo(0, 0)")
    width = chromium.execute_script("return window.innerWidth")
    assert chromium.execute_script("return document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    homes = chromium.find_element(By.ID, "homes").rect
    calls = chromium.find_element(By.ID, "calls").rect
    assert homes["x"] + homes["width"] <= calls["x"], "homes on the left, calls on the right"
    assert abs(homes["y"] - calls["y"]) < 2, "the two columns start at the same height"
    assert homes["width"] > calls["width"] > 250
    cards = [c.rect for c in chromium.find_elements(By.CSS_SELECTOR, ".device")]
    assert len(cards) >= 4
    for index, box in enumerate(cards):
        assert box["width"] >= 180, f"card {index} is {box['width']} px wide"
        assert homes["x"] <= box["x"]
        assert box["x"] + box["width"] <= homes["x"] + homes["width"]
        for other in cards[index + 1 :]:
            apart = (
                box["x"] + box["width"] <= other["x"]
                or other["x"] + other["width"] <= box["x"]
                or box["y"] + box["height"] <= other["y"]
                or other["y"] + other["height"] <= box["y"]
            )
            assert apart, f"cards overlap: {box} {other}"
    for button in chromium.find_elements(By.CSS_SELECTOR, ".device .controls > button"):
        holder = button.find_element(By.XPATH, "./ancestor::div[contains(@class, 'device')]").rect
        box = button.rect
        assert holder["x"] <= box["x"]
        assert box["x"] + box["width"] <= holder["x"] + holder["width"] + 0.5
    png = chromium.get_screenshot_as_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == width, "the picture is the window's width"


def test_data_secrets_and_ports_survive_a_restart_and_nothing_outlives_the_stack(
    running: Running, stack_dir: Path
) -> None:
    """Every start began from nothing; closing the terminal (SIGHUP) left 12 processes and a stale record; the next
    start moved ports; a stack killed outright left everything running."""
    first = running.run
    garden = {**PORCH_LIGHT, "id": "garden-light", "name": {"name": "Garden light"}}
    added = running.cli("devices", "add", "--user", running.user, "--file", "-", stdin=json.dumps(garden))
    assert added.returncode == 0, added.stderr
    ports = first.ports()
    children = first.children()
    assert first.end(signal.SIGHUP) == 0
    assert "Data saved" in first.output
    assert "Stopped." in first.output
    assert all_gone(children) == [], "processes of the stack outlived its terminal"
    assert not (stack_dir / "stack.json").exists()

    second = StackRun(stack_dir)
    try:
        output = second.wait_for(READY)
        assert "data kept from the last run" in output
        assert banner_value(output, r"Demo user: (\S+)") == running.user
        assert banner_value(output, r"sign-in demo@example\.com / (\S+);") == running.password
        assert banner_value(output, r"Account linking: client google / (\S+) ") == running.client_secret
        kept = {name: port for name, port in ports.items() if port in stack.DEFAULT_PORTS.values()}
        assert {name: second.ports()[name] for name in kept} == kept, "the default ports are taken again at once"
        listed = cli(second, "devices", "list", "--user", running.user)
        assert "garden-light" in {d["id"] for d in json.loads(listed.stdout)}, "a device added by hand is kept"
        standin = second.record()["urls"]["homegraph stand-in"]
        assert get(f"{standin}/standin/users/{running.user}")["linked"] is True, "Google knows its linked users"

        # Killed outright: no chance to clean up. Its children end with it all the same.
        children = second.children()
        second.process.kill()
        second.process.wait(timeout=30)
        assert all_gone(children) == [], "processes of a killed stack outlived it"
        assert json.loads((stack_dir / "stack.json").read_text())["pid"] == second.process.pid, "a stale record"
    finally:
        second.end(signal.SIGKILL)

    third = StackRun(stack_dir, "--fresh")
    try:
        output = third.wait_for(READY)
        assert "did not stop cleanly" in output, "the stale record was found and cleaned"
        assert "data new" in output
        assert banner_value(output, r"sign-in demo@example\.com / (\S+);") != running.password
        user = banner_value(output, r"Demo user: (\S+)")
        listed = cli(third, "devices", "list", "--user", user)
        assert "garden-light" not in {d["id"] for d in json.loads(listed.stdout)}
        children = third.children()
    finally:
        assert third.end(signal.SIGTERM) == 0
    assert "Stopped." in third.output
    assert all_gone(children) == []
    assert not (stack_dir / "stack.json").exists()
    assert java_of_this_test() == [], "an emulator outlived the stack"
