"""The HomeGraph client (Google's discovery client) against the stand-in: typed outcomes, retries, credentials."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from functions.platform.homegraph import (
    HOMEGRAPH_SCOPE,
    BadRequest,
    Forbidden,
    HomeGraphClient,
    NotFound,
    Ok,
    RetryPolicy,
    Transient,
    application_default_credentials,
)
from tools import emulators
from tools.homegraph_standin import StandIn

ROOT = Path(__file__).resolve().parents[2]
LAMP = {
    "id": "lamp-1",
    "type": "action.devices.types.LIGHT",
    "traits": ["action.devices.traits.OnOff"],
    "name": {"name": "Desk lamp"},
    "willReportState": True,
}


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(homegraph_standin: StandIn, sleeps: Sleeps) -> HomeGraphClient:
    homegraph_standin.link("alice", sync=False, devices=[LAMP])
    return HomeGraphClient(
        endpoint=homegraph_standin.url,
        timeout_s=10,  # no test of this fixture is about timeouts: a loaded machine must not look like one
        retry=RetryPolicy(attempts=4, base_s=0.1, cap_s=0.4),
        sleep=sleeps,
        unit_random=lambda: 0.5,
    )


def test_request_sync_sends_googles_body_anonymously(client: HomeGraphClient, homegraph_standin: StandIn) -> None:
    outcome = client.request_sync("alice")
    assert outcome == Ok({}, attempts=1)
    [call] = homegraph_standin.calls("requestSync")
    assert call["request"] == {"agentUserId": "alice", "async": True}
    assert call["path"] == "/v1/devices:requestSync"
    assert call["caller"] == "anonymous"


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, BadRequest), (409, BadRequest), (401, Forbidden), (403, Forbidden), (404, NotFound)],
)
def test_client_errors_are_typed_and_never_retried(
    client: HomeGraphClient, homegraph_standin: StandIn, sleeps: Sleeps, status: int, error: type[Exception]
) -> None:
    homegraph_standin.add_fault(method="requestSync", status=status, message=f"injected {status}")
    with pytest.raises(error) as raised:
        client.request_sync("alice")
    assert type(raised.value) is error
    assert raised.value.status == status  # type: ignore[attr-defined]
    assert raised.value.reason == f"injected {status}"  # type: ignore[attr-defined]
    assert raised.value.request_body == {"agentUserId": "alice", "async": True}  # type: ignore[attr-defined]
    assert len(homegraph_standin.calls("requestSync")) == 1
    assert sleeps.waits == []


def test_an_unknown_user_is_not_found_with_googles_reason(client: HomeGraphClient) -> None:
    with pytest.raises(NotFound) as raised:
        client.request_sync("nobody")
    assert raised.value.status_name == "NOT_FOUND"
    assert raised.value.reason == "Requested entity was not found."


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
def test_transient_errors_are_retried_with_growing_jittered_waits(
    client: HomeGraphClient, homegraph_standin: StandIn, sleeps: Sleeps, status: int
) -> None:
    homegraph_standin.add_fault(method="requestSync", status=status, times=2)
    assert client.request_sync("alice") == Ok({}, attempts=3)
    assert [c["status"] for c in homegraph_standin.calls("requestSync")] == [status, status, 200]
    assert sleeps.waits == pytest.approx([0.075, 0.15])  # half-to-full of 0.1 and 0.2, at random 0.5


def test_transient_errors_end_as_transient_after_the_last_attempt(
    client: HomeGraphClient, homegraph_standin: StandIn, sleeps: Sleeps
) -> None:
    homegraph_standin.add_fault(method="requestSync", status=503)
    with pytest.raises(Transient) as raised:
        client.request_sync("alice")
    assert raised.value.attempts == 4
    assert raised.value.status == 503
    assert len(homegraph_standin.calls("requestSync")) == 4
    assert sleeps.waits == pytest.approx([0.075, 0.15, 0.3])  # capped at 0.4: the third is 0.4 * 0.75


def test_a_timeout_is_transient(homegraph_standin: StandIn, sleeps: Sleeps) -> None:
    homegraph_standin.link("alice", sync=False)
    # The timeout leaves the healthy retry room on a loaded machine; the delay is well past it.
    homegraph_standin.add_fault(method="requestSync", delay_s=4, times=1)
    client = HomeGraphClient(
        endpoint=homegraph_standin.url, timeout_s=1.5, retry=RetryPolicy(attempts=2, base_s=0.01), sleep=sleeps
    )
    assert client.request_sync("alice").attempts == 2
    homegraph_standin.add_fault(method="requestSync", delay_s=4)
    with pytest.raises(Transient) as raised:
        client.request_sync("alice")
    assert raised.value.status is None
    assert "timed out" in raised.value.reason


def test_no_server_at_all_is_transient(sleeps: Sleeps) -> None:
    closed = f"http://127.0.0.1:{emulators.free_port()}"
    client = HomeGraphClient(endpoint=closed, timeout_s=1, retry=RetryPolicy(attempts=2, base_s=0.01), sleep=sleeps)
    with pytest.raises(Transient) as raised:
        client.request_sync("alice")
    assert raised.value.attempts == 2


def test_report_state_and_notification_sends_the_body_as_given(
    client: HomeGraphClient, homegraph_standin: StandIn
) -> None:
    body = {
        "requestId": "r-9",
        "agentUserId": "alice",
        "payload": {"devices": {"states": {"lamp-1": {"on": True, "online": True}}}},
    }
    assert client.report_state_and_notification(body).body == {"requestId": "r-9"}
    assert homegraph_standin.calls("reportStateAndNotification")[0]["request"] == body
    assert homegraph_standin.states("alice") == {"lamp-1": {"on": True, "online": True}}
    with pytest.raises(BadRequest) as raised:
        client.report_state_and_notification({**body, "payload": {"devices": {"states": {"lamp-1": {"dim": 1}}}}})
    assert "['dim']" in raised.value.reason
    with pytest.raises(NotFound):
        client.report_state_and_notification({**body, "payload": {"devices": {"states": {"ghost": {"on": 1}}}}})


def test_query_sync_and_delete_agent_user(client: HomeGraphClient, homegraph_standin: StandIn) -> None:
    client.report_state_and_notification(
        {"agentUserId": "alice", "payload": {"devices": {"states": {"lamp-1": {"on": False}}}}}
    )
    assert client.query("alice", ["lamp-1"], request_id="q").body == {
        "requestId": "q",
        "payload": {"devices": {"lamp-1": {"on": False}}},
    }
    assert [d["id"] for d in client.sync("alice").body["payload"]["devices"]] == ["lamp-1"]
    assert client.delete_agent_user("alice") == Ok({}, attempts=1)
    with pytest.raises(NotFound):
        client.request_sync("alice")


def test_one_client_serves_many_threads(client: HomeGraphClient, homegraph_standin: StandIn) -> None:
    results: list[int] = []

    def call() -> None:
        results.append(client.request_sync("alice").attempts)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1] * 16
    assert len(homegraph_standin.calls("requestSync")) == 16


class Recorder:
    """Stands where the GCE metadata server would be; counts every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def metadata_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    monkeypatch.setenv("GCE_METADATA_HOST", recorder.address)
    monkeypatch.setenv("GCE_METADATA_IP", recorder.address)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


def test_homegraph_endpoint_means_anonymous_and_no_metadata_server(
    homegraph_standin: StandIn, metadata_server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    homegraph_standin.link("alice", sync=False)
    monkeypatch.setenv("HOMEGRAPH_TIMEOUT_S", "3")
    client = HomeGraphClient.from_environment()  # HOMEGRAPH_ENDPOINT is the stand-in's URL
    assert client.endpoint == homegraph_standin.url
    assert client.timeout_s == 3
    assert client.request_sync("alice").attempts == 1
    assert homegraph_standin.calls("requestSync")[0]["caller"] == "anonymous"
    assert metadata_server.hits == []


def test_without_an_endpoint_and_without_credentials_the_failure_is_forbidden(
    metadata_server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Production without any ADC: the lookup fails (here the metadata server answers 404); nothing retries it.
    monkeypatch.setenv("GCE_METADATA_TIMEOUT", "1")
    monkeypatch.setenv("NO_GCE_CHECK", "False")
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent")
    client = HomeGraphClient(retry=RetryPolicy(attempts=3))
    with pytest.raises(Forbidden) as raised:
        client.request_sync("alice")
    assert "Application Default Credentials" in raised.value.reason
    assert raised.value.attempts == 1


def test_production_credentials_are_adc_with_the_homegraph_scope(
    homegraph_standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "demo-smart-home-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "homegraph@demo-smart-home-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{homegraph_standin.url}/token",
    }
    (tmp_path / "sa.json").write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    monkeypatch.delenv("HOMEGRAPH_ENDPOINT")

    credentials = application_default_credentials()
    assert credentials.scopes == [HOMEGRAPH_SCOPE]
    assert HomeGraphClient()._credentials_for_calls().service_account_email == account["client_email"]

    homegraph_standin.link("alice", sync=False)
    client = HomeGraphClient(endpoint=homegraph_standin.url, credentials=credentials)
    assert client.request_sync("alice").attempts == 1
    [token_request] = homegraph_standin.token_requests()
    assert token_request["scope"] == HOMEGRAPH_SCOPE
    assert token_request["grantType"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert homegraph_standin.calls("requestSync")[0]["caller"] == "oauth:1"


def test_importing_the_client_loads_no_google_api_library() -> None:
    probe = (
        "import sys, json; import functions.platform.homegraph; "
        "heavy = ('googleapiclient', 'httplib2', 'google.auth'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
