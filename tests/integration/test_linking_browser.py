"""Account linking end to end in a real headless Chromium, as a person links their account in the Google Home app.

`authorize`, `token` and `fulfillment` run under functions-framework (gunicorn) on free loopback ports, on the
Firestore emulator; a tiny local server stands in for Google's oauth-redirect URL. The client, the user and a device
are registered with the operators' CLI. Chromium opens the authorize URL, the person signs in (once with a wrong
password), allows access, and lands on the redirect with a code and the same state; the test then does what
Google's servers do: exchanges the code, refreshes, and calls SYNC with the access token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.linking_helpers import query_of
from tests.schema_oracle import oracle
from tools.emulators import free_port
from tools.google import sync_request

pytestmark = pytest.mark.emulator

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
PROJECT = "demo-smart-home-test"
ARTIFACTS = REPO_ROOT / ".local-stack" / "test-logs"
LAMP = {
    "id": "lamp-e2e",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Hall lamp"},
    "willReportState": True,
    "state": {"on": False},
}


class RedirectCatcher:
    """Stands in for https://oauth-redirect.googleusercontent.com/r/PROJECT: records where the browser lands."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                catcher.requests.append(self.path)
                body = b"<!doctype html><html lang='en'><title>Linked</title><h1>Back at Google</h1></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the query holds the code."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/r/{PROJECT}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our loopback server
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def served(firestore_emulator: Any) -> Iterator[dict[str, str]]:
    """authorize, token and fulfillment, each in its own functions-framework process."""
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.address,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PYTHONUNBUFFERED": "1",
        "WORKERS": "1",
        "THREADS": "4",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for target in ("authorize", "token", "fulfillment"):
            port = free_port()
            command = [sys.executable, "-m", "functions_framework", "--target", target, "--source", "main.py"]
            command += ["--host", "127.0.0.1", "--port", str(port)]
            with open(ARTIFACTS / f"browser-{target}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
                )
            urls[target] = f"http://127.0.0.1:{port}/"
        for process, url in zip(processes, urls.values(), strict=True):
            _wait_until_serving(url, process)
        yield urls
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Chromium is not installed (/usr/bin/chromium and /usr/bin/chromedriver from the Debian packages "
            "chromium and chromium-driver): run tools/setup.sh as root"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=800,900"):
            options.add_argument(flag)
        # Selenium Manager would look for drivers online: the Debian driver is given, and it stays offline.
        os.environ.setdefault("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def cli(*argv: str, stdin: str = "") -> Any:
    env = {**os.environ, "OAUTH_CLIENT_SECRET": ""}
    done = subprocess.run(
        [sys.executable, "-m", "functions", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def post_form(url: str, data: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=urlencode(data).encode(), headers=headers or {}, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(url: str, body: Any, token: str) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return response.status, json.loads(response.read())


def test_linking_in_a_real_browser(served: dict[str, str], chromium: Any, firestore_db: Any) -> None:
    import base64

    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(condition: Any) -> Any:
        """Until the page the last click led to is there (a click does not wait for the navigation)."""
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(chromium, 20, ignored_exceptions=ignored).until(condition)

    catcher = RedirectCatcher()
    try:
        client = cli("clients", "add", "--id", "google-e2e", "--name", "Google Home", "--redirect-uri", catcher.url)
        password = "a long browser password"
        user = cli("users", "add", "--email", "person@example.com", stdin=password + "\n")
        agent_user_id = user["agentUserId"]
        devices = subprocess.run(
            [sys.executable, "-m", "functions", "devices", "add", "--user", agent_user_id, "--file", "-"],
            input=json.dumps([LAMP]),
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=60,
            check=False,
        )
        assert devices.returncode == 0, devices.stderr

        state = "google-state/ä&1"
        query = urlencode(
            {"response_type": "code", "client_id": "google-e2e", "redirect_uri": catcher.url, "state": state}
        )
        chromium.get(served["authorize"] + "?" + query)
        assert chromium.find_element(By.TAG_NAME, "h1").text.startswith("Sign in to link")
        assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

        def sign_in(secret: str) -> None:
            email = chromium.find_element(By.ID, "email")
            email.clear()
            email.send_keys("person@example.com")
            chromium.find_element(By.CSS_SELECTOR, "label[for=password]")
            chromium.find_element(By.ID, "password").send_keys(secret)
            chromium.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()

        sign_in("not my password")
        error = wait_for(lambda driver: driver.find_element(By.ID, "form-error"))
        assert error.text == "The e-mail address or password is incorrect."
        assert "form-error" in (chromium.find_element(By.ID, "password").get_attribute("aria-describedby") or "")
        chromium.save_screenshot(str(ARTIFACTS / "linking-sign-in-error.png"))

        sign_in(password)
        wait_for(lambda driver: "Allow" in driver.find_element(By.TAG_NAME, "h1").text)
        assert "person@example.com" in chromium.page_source
        chromium.save_screenshot(str(ARTIFACTS / "linking-consent.png"))
        chromium.find_element(By.CSS_SELECTOR, "button[name=decision][value=allow]").click()
        wait_for(lambda driver: driver.current_url.startswith(catcher.url))
        wait_for(lambda driver: driver.find_element(By.TAG_NAME, "h1").text == "Back at Google")

        landed = query_of(chromium.current_url)
        assert landed["state"] == state
        assert len([path for path in catcher.requests if path.startswith(f"/r/{PROJECT}")]) == 1
        code = landed["code"]

        # What Google's servers do next: the secret in the body first, HTTP Basic for the refresh.
        status, issued = post_form(
            served["token"],
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": catcher.url,
                "client_id": "google-e2e",
                "client_secret": client["clientSecret"],
            },
        )
        assert status == 200, issued
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 3600
        basic = base64.b64encode(f"google-e2e:{client['clientSecret']}".encode()).decode()
        status, renewed = post_form(
            served["token"],
            {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
            {"Authorization": f"Basic {basic}"},
        )
        assert status == 200, renewed
        assert renewed["refresh_token"] != issued["refresh_token"]

        status, body = post_json(served["fulfillment"], sync_request("req-e2e"), renewed["access_token"])
        assert status == 200
        oracle().assert_response("sync", body)
        assert body["payload"]["agentUserId"] == agent_user_id
        assert [device["id"] for device in body["payload"]["devices"]] == ["lamp-e2e"]
        linked = firestore_db.collection("users").document(agent_user_id).get().to_dict()
        assert linked["linked"] is True

        # The code was used: a second exchange fails (and revokes what it produced).
        replay = post_form(
            served["token"],
            {"grant_type": "authorization_code", "code": code, "redirect_uri": catcher.url},
            {"Authorization": f"Basic {basic}"},
        )
        assert replay[0] == 400
        assert replay[1]["error"] == "invalid_grant"

        logs = "".join((ARTIFACTS / f"browser-{t}.log").read_text(errors="replace") for t in served)
        for secret in (code, issued["access_token"], renewed["refresh_token"], client["clientSecret"], password):
            assert secret.split(".")[-1] not in logs
    finally:
        catcher.stop()
