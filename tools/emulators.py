"""Google's Firestore and Pub/Sub emulators, started from their jars (google-cloud-cli packages).

Starting `java` directly is faster than `gcloud emulators ...` and leaves no orphaned child process. Used by the
test session, the benchmarks and the local stack.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "Google's emulators come with the google-cloud-cli Debian packages: "
    "apt-get install google-cloud-cli google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator "
    "default-jre-headless (see README)."
)


class EmulatorUnavailable(RuntimeError):
    pass


def sdk_root() -> Path:
    """The google-cloud-cli root: $CLOUDSDK_ROOT, else what `gcloud info` says, else Debian's location."""
    configured = os.environ.get("CLOUDSDK_ROOT")
    if configured:
        return Path(configured)
    gcloud = shutil.which("gcloud")
    if gcloud:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            if out:
                return Path(out)
        return Path(os.path.realpath(gcloud)).parents[1]
    return Path("/usr/lib/google-cloud-sdk")


def firestore_jar() -> Path:
    return sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar"


def pubsub_jar() -> Path:
    jars = sorted((sdk_root() / "platform" / "pubsub-emulator" / "lib").glob("cloud-pubsub-emulator-*-all.jar"))
    if not jars:
        raise EmulatorUnavailable(f"Pub/Sub emulator jar not found under {sdk_root()}. {INSTALL_HINT}")
    return jars[-1]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class Emulator:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        stop_process_group(self.process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Ends a child started with start_new_session=True and everything it started: TERM, then KILL after 10 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise EmulatorUnavailable(f"java not found. {INSTALL_HINT}")
    return java


def _start(name: str, command: list[str], host: str, port: int, log_path: Path | None, timeout_s: float) -> Emulator:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    emulator = Emulator(name, host, port, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorUnavailable(f"{name} emulator exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(emulator.url + "/", timeout=1):  # noqa: S310 - our own loopback emulator
                return emulator
        except urllib.error.HTTPError:
            return emulator  # it answers: it is up
        except OSError:
            time.sleep(0.1)
    emulator.stop()
    raise EmulatorUnavailable(f"{name} emulator did not start within {timeout_s:.0f} s")


def start_firestore(
    project: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    functions_emulator: str | None = None,
    log_path: Path | None = None,
    timeout_s: float = 60,
) -> Emulator:
    jar = firestore_jar()
    if not jar.exists():
        raise EmulatorUnavailable(f"Firestore emulator jar not found at {jar}. {INSTALL_HINT}")
    port = port or free_port(host)
    command = [
        _java(),
        "-Duser.language=en",
        "-cp",
        str(jar),
        "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
        f"--host={host}",
        f"--port={port}",
        f"--project_id={project}",
        "--single_project_mode=true",
    ]
    if functions_emulator:
        command.append(f"--functions_emulator={functions_emulator}")
    return _start("firestore", command, host, port, log_path, timeout_s)


def start_pubsub(
    project: str, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None, timeout_s: float = 60
) -> Emulator:
    port = port or free_port(host)
    command = [_java(), "-jar", str(pubsub_jar()), f"--host={host}", f"--port={port}", f"--projects={project}"]
    return _start("pubsub", command, host, port, log_path, timeout_s)


def clear_firestore(emulator_address: str, project: str, database: str = "(default)") -> None:
    """Deletes every document of the emulator's database."""
    request = urllib.request.Request(
        f"http://{emulator_address}/emulator/v1/projects/{project}/databases/{database}/documents", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass
