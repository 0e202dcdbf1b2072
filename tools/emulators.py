"""Google's Firestore and Pub/Sub emulators, started from their jars (google-cloud-cli packages).

Starting `java` directly is faster than `gcloud emulators ...` and leaves no orphaned child process. Used by the
test session, the benchmarks and the local stack. On Linux every child gets a parent-death signal: it ends when the
process that started it ends, however that process ends (even by SIGKILL), so nothing outlives a test or the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
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
    """Whether a server could listen on `port` now. SO_REUSEADDR as the servers themselves bind: a port whose last
    connections are in TIME_WAIT (a stack stopped a moment ago) is free for them, one with a listener is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


GUARD = Path(__file__).resolve().with_name("orphan_guard.py")


def guarded(command: list[str]) -> list[str]:
    """`command` run so that it gets SIGTERM when this process ends, however it ends (Linux's parent-death signal,
    set by tools/orphan_guard.py, which then execs the command in its place); the command itself elsewhere.

    A wrapper rather than a preexec_fn: with one, subprocess must fork() instead of vfork(), and gRPC's fork
    handlers (this process has Pub/Sub and Firestore clients) can then crash the child before its exec. The signal
    comes when the thread that started the child ends: start children from a long-lived thread.
    """
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", str(GUARD), str(os.getpid()), *command]


@dataclass
class Emulator:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

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
    stop_process_groups([process])


def stop_process_groups(processes: list[subprocess.Popen[bytes]], grace_s: float = 10) -> None:
    """Ends several such children together (each takes a moment to wind down: not one after the other)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise EmulatorUnavailable(f"java not found. {INSTALL_HINT}")
    return java


def _launch(name: str, command: list[str], host: str, port: int, log_path: Path | None) -> Emulator:
    """Starts the emulator's process and returns at once (`wait_until_up` waits for it to answer)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(guarded(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Emulator(name, host, port, process, log_path)


def wait_until_up(emulator: Emulator, timeout_s: float = 60) -> Emulator:
    """Returns once the emulator answers HTTP; stops it and raises EmulatorUnavailable if it does not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if emulator.process.poll() is not None:
            raise EmulatorUnavailable(
                f"{emulator.name} emulator exited with {emulator.process.returncode}; see {emulator.log_path}"
            )
        try:
            with urllib.request.urlopen(emulator.url + "/", timeout=1):  # noqa: S310 - our own loopback emulator
                return emulator
        except urllib.error.HTTPError:
            return emulator  # it answers: it is up
        except OSError:
            time.sleep(0.1)
    emulator.stop()
    raise EmulatorUnavailable(f"{emulator.name} emulator did not start within {timeout_s:.0f} s")


def start_firestore(
    project: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    functions_emulator: str | None = None,
    log_path: Path | None = None,
    timeout_s: float = 60,
    import_from: Path | None = None,
) -> Emulator:
    """The Firestore emulator, answering; `import_from`: an export (`export_firestore`) it starts with."""
    return wait_until_up(launch_firestore(project, host, port, functions_emulator, log_path, import_from), timeout_s)


def launch_firestore(
    project: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    functions_emulator: str | None = None,
    log_path: Path | None = None,
    import_from: Path | None = None,
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
    if import_from is not None:
        command.append(f"--seed_from_export={export_metadata(import_from)}")
    return _launch("firestore", command, host, port, log_path)


def start_pubsub(
    project: str, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None, timeout_s: float = 60
) -> Emulator:
    return wait_until_up(launch_pubsub(project, host, port, log_path), timeout_s)


def launch_pubsub(
    project: str, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
) -> Emulator:
    port = port or free_port(host)
    command = [_java(), "-jar", str(pubsub_jar()), f"--host={host}", f"--port={port}", f"--projects={project}"]
    return _launch("pubsub", command, host, port, log_path)


# The Firestore emulator's own export (the format `gcloud firestore export` writes), for data that lasts.
EXPORT_NAME = "firestore_export"


def export_metadata(directory: Path) -> Path:
    """The metadata file of an export written by `export_firestore(..., directory)`."""
    return directory / EXPORT_NAME / f"{EXPORT_NAME}.overall_export_metadata"


def has_export(directory: Path) -> bool:
    return export_metadata(directory).is_file()


def export_firestore(emulator_address: str, project: str, directory: Path, timeout_s: float = 60) -> None:
    """Writes every document of the emulator to `directory` (replaced as a whole only once the export is complete)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = directory.with_name(directory.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    body = {
        "database": f"projects/{project}/databases/(default)",
        "export_directory": str(fresh.resolve()),
        "export_name": EXPORT_NAME,
    }
    request = urllib.request.Request(
        f"http://{emulator_address}/emulator/v1/projects/{project}:export",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s):  # noqa: S310
        pass
    previous = directory.with_name(directory.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    fresh.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)


def latest_export(directory: Path) -> Path | None:
    """The export to start from: `directory`, or the one an interrupted replacement left beside it."""
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if has_export(candidate):
            return candidate
    return None


def clear_firestore(emulator_address: str, project: str, database: str = "(default)") -> None:
    """Deletes every document of the emulator's database."""
    request = urllib.request.Request(
        f"http://{emulator_address}/emulator/v1/projects/{project}/databases/{database}/documents", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass
