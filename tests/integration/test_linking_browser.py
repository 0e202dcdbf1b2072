"""Account linking end to end in a real headless Chromium, as a person links their account in the Google Home app.

`authorize`, `token` and `fulfillment` run under functions-framework (gunicorn) on free loopback ports, on the
Firestore emulator, with a brand (name, shipped logo, accent colour, links); a tiny local server stands in for
Google's oauth-redirect URL. The client, the user and a device are registered with the operators' CLI. Chromium opens
the authorize URL, the person signs in (once with a wrong password), agrees, and lands on the redirect with a code
and the same state; the test then does what Google's servers do: exchanges the code, refreshes, and calls SYNC with
the access token. Then every language's pages, each screenshot checked for the logo (its pixels) and the wording
(the page's text), and Cancel back to Google with access_denied.

Screenshots go to .local-stack/test-logs/; with UPDATE_DOCS_SCREENSHOTS=1 the English ones also replace
docs/images/account-linking-*.png (the documentation's).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.linking_helpers import authorize_params, query_of
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
DOCS_IMAGES = REPO_ROOT / "docs" / "images"
BRAND = {
    "ACCOUNT_LINKING_SERVICE_NAME": "Acme Home",
    "ACCOUNT_LINKING_LOGO": "functions/linking/static/logo-example.svg",
    "ACCOUNT_LINKING_ACCENT_COLOR": "#0b8043",
    "ACCOUNT_LINKING_PRIVACY_URL": "https://acme.example/privacy",
    "ACCOUNT_LINKING_TERMS_URL": "https://acme.example/terms",
    "ACCOUNT_LINKING_SUPPORT_URL": "https://acme.example/help",
    "ACCOUNT_LINKING_PASSWORD_RESET_URL": "https://acme.example/reset",
}
LOGO_GREEN = (0x0B, 0x80, 0x43)  # the example logo's mark, and the accent
# Per language: Accept-Language, the html lang, the sign-in page's heading, the consent page's heading, its
# "Agree and link" and "Cancel" (written out here, not read from the catalogues the pages use).
LANGUAGES = {
    "en": (
        "en-US,en;q=0.9",
        "en",
        "Sign in to link your Acme Home account",
        "Link your Acme Home account to Google",
        "Agree and link",
        "Cancel",
    ),
    "de": (
        "de-DE,de;q=0.9",
        "de",
        "Melden Sie sich an, um Ihr Acme Home-Konto zu verknüpfen",
        "Ihr Acme Home-Konto mit Google verknüpfen",
        "Zustimmen und verknüpfen",
        "Abbrechen",
    ),
    "fr": (
        "fr-FR,fr;q=0.9",
        "fr",
        "Connectez-vous pour associer votre compte Acme Home",
        "Associer votre compte Acme Home à Google",
        "Accepter et associer",
        "Annuler",
    ),
    "es": (
        "es-ES,es;q=0.9",
        "es",
        "Inicia sesión para vincular tu cuenta de Acme Home",
        "Vincula tu cuenta de Acme Home a Google",
        "Aceptar y vincular",
        "Cancelar",
    ),
    "ja": (
        "ja-JP,ja;q=0.9",
        "ja",
        "ログインして Acme Home アカウントをリンク",
        "Acme Home アカウントを Google にリンク",
        "同意してリンク",
        "キャンセル",
    ),
    "ko": (
        "ko-KR,ko;q=0.9",
        "ko",
        "로그인하여 Acme Home 계정 연결",
        "Acme Home 계정을 Google에 연결",
        "동의 및 연결",
        "취소",
    ),
    "zh_Hans": (
        "zh-CN,zh;q=0.9",
        "zh-Hans",
        "登录以关联您的 Acme Home 帐号",
        "将您的 Acme Home 帐号关联到 Google",
        "同意并关联",
        "取消",
    ),
    "id": (
        "id-ID,id;q=0.9",
        "id",
        "Masuk untuk menautkan akun Acme Home Anda",
        "Tautkan akun Acme Home Anda ke Google",
        "Setuju dan tautkan",
        "Batal",
    ),
}
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
        **BRAND,
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


def png_rows(png: bytes, bottom: int) -> tuple[int, int, list[bytes]]:
    """(width, channels, the first `bottom` rows of pixels) of an 8-bit RGB(A) PNG such as Chromium's screenshots."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    position = 8
    while position < len(png):
        length = int.from_bytes(png[position : position + 4], "big")
        kind = png[position + 4 : position + 8]
        chunks[kind] = chunks.get(kind, b"") + png[position + 8 : position + 8 + length]
        position += 12 + length
    header = chunks[b"IHDR"]
    width, depth, color, interlace = int.from_bytes(header[:4], "big"), header[8], header[9], header[12]
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert color in (2, 6), color
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(chunks[b"IDAT"]), width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(bottom):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                distances = (abs(guess - left), abs(guess - up), abs(guess - corner))
                line[x] = (line[x] + (left, up, corner)[distances.index(min(distances))]) & 255
        rows.append(bytes(line))
        previous = line
    return width, channels, rows


def green_pixels(screenshot: bytes, box: dict[str, float]) -> int:
    """How many pixels of the box (an element's rect, CSS pixels at a device pixel ratio of 1) are the logo's green."""
    left, top = int(box["x"]), int(box["y"])
    right, bottom = int(box["x"] + box["width"]), int(box["y"] + box["height"])
    _, channels, rows = png_rows(screenshot, bottom)
    found = 0
    for row in rows[top:bottom]:
        for x in range(left, right):
            pixel = row[x * channels : x * channels + 3]
            found += all(abs(value - wanted) <= 12 for value, wanted in zip(pixel, LOGO_GREEN, strict=True))
    return found


def test_linking_in_a_real_browser(served: dict[str, str], chromium: Any, firestore_db: Any) -> None:
    import base64

    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(condition: Any) -> Any:
        """Until the page the last click led to is there (a click does not wait for the navigation)."""
        ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)  # navigation races
        return WebDriverWait(chromium, 20, ignored_exceptions=ignored).until(condition)

    catcher = RedirectCatcher()
    try:
        client = cli("clients", "add", "--id", "google-e2e", "--name", "Google", "--redirect-uri", catcher.url)
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
        screenshot(chromium, "en", "sign-in")

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
        screenshot(chromium, "en", "sign-in-error")

        sign_in(password)
        wait_for(lambda driver: "Link your" in driver.find_element(By.TAG_NAME, "h1").text)
        assert "person@example.com" in chromium.page_source
        screenshot(chromium, "en", "consent")
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

        chromium.get(served["authorize"] + "?" + urlencode(authorize_params(client_id="not-registered")))
        wait_for(lambda driver: driver.find_element(By.TAG_NAME, "h1").text == "Unknown app")
        screenshot(chromium, "en", "error")

        logs = "".join((ARTIFACTS / f"browser-{t}.log").read_text(errors="replace") for t in served)
        for secret in (code, issued["access_token"], renewed["refresh_token"], client["clientSecret"], password):
            assert secret.split(".")[-1] not in logs
    finally:
        catcher.stop()
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        for page in ("sign-in", "sign-in-error", "consent", "error"):
            shutil.copyfile(ARTIFACTS / f"linking-en-{page}.png", DOCS_IMAGES / f"account-linking-{page}.png")


def screenshot(chromium: Any, language: str, page: str) -> bytes:
    png: bytes = chromium.get_screenshot_as_png()
    (ARTIFACTS / f"linking-{language}-{page}.png").write_bytes(png)
    return png


def test_every_language_in_a_real_browser(served: dict[str, str], chromium: Any, firestore_db: Any) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def wait_for(condition: Any) -> Any:
        # While the form's POST navigates, an element found in the old document may be gone before it is read
        # (Chrome's "Node with given id does not belong to the document"): look again.
        ignored = (NoSuchElementException, StaleElementReferenceException, WebDriverException)
        return WebDriverWait(chromium, 20, ignored_exceptions=ignored).until(condition)

    def logo_shows(png: bytes) -> None:
        logo = chromium.find_element(By.CSS_SELECTOR, "img.logo")
        assert chromium.execute_script("return arguments[0].complete && arguments[0].naturalWidth", logo) > 0, (
            "the logo loaded: its CSP allows it"
        )
        assert logo.get_attribute("alt") == "Acme Home"
        assert green_pixels(png, logo.rect) > 500, "the logo is in the screenshot"

    catcher = RedirectCatcher()
    try:
        cli("clients", "add", "--id", "google-e2e", "--name", "Google", "--redirect-uri", catcher.url)
        password = "a long browser password"
        cli("users", "add", "--email", "person@example.com", stdin=password + "\n")
        user_agent = chromium.execute_script("return navigator.userAgent")
        for language, (accept, lang, sign_in_heading, consent_heading, agree, cancel) in LANGUAGES.items():
            chromium.execute_cdp_cmd(
                "Network.setUserAgentOverride", {"userAgent": user_agent, "acceptLanguage": accept}
            )
            state = f"state-{language}"
            query = urlencode(
                {"response_type": "code", "client_id": "google-e2e", "redirect_uri": catcher.url, "state": state}
            )
            chromium.get(served["authorize"] + "?" + query)
            heading = wait_for(lambda driver: driver.find_element(By.TAG_NAME, "h1"))
            assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
            assert heading.text == sign_in_heading, language
            logo_shows(screenshot(chromium, language, "sign-in"))
            assert chromium.find_element(By.CSS_SELECTOR, "label[for=email]").text
            chromium.find_element(By.ID, "email").send_keys("person@example.com")
            chromium.find_element(By.ID, "password").send_keys(password)
            chromium.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait_for(lambda driver, expected=consent_heading: driver.find_element(By.TAG_NAME, "h1").text == expected)
            agree_button = chromium.find_element(By.CSS_SELECTOR, "button[name=decision][value=allow]")
            cancel_button = chromium.find_element(By.CSS_SELECTOR, "button[name=decision][value=deny]")
            assert (agree_button.text, cancel_button.text) == (agree, cancel), language
            statement = chromium.find_element(By.ID, "link-statement").text
            assert statement.count("Google") == 2, statement  # linked to Google; Google will control the devices
            assert "Acme Home" in statement, statement
            png = screenshot(chromium, language, "consent")
            logo_shows(png)
            assert green_pixels(png, agree_button.rect) > 200, "the button in the brand's accent"
            cancel_button.click()
            wait_for(lambda driver: driver.current_url.startswith(catcher.url))
            assert query_of(chromium.current_url) == {
                "error": "access_denied",
                "error_description": "The resource owner or authorization server denied the request",
                "state": state,
            }
    finally:
        catcher.stop()
