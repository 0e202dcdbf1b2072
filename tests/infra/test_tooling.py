"""The deployment's own checks: terraform fmt, checkov, shellcheck and the deploy script's dry run (what the source
archive holds is checked in test_source.py)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra import facts
from tests.infra.test_terraform import EVENT_TRIGGERS, functions_by_entry_point

ROOT = facts.ROOT
CHECKOV_VERSION = "3.3.30"
# Checkov lives in a venv of its own: it pins a fork of python-hcl2 that shares the `hcl2` module name with the one
# these tests use. Built once per checkout (about 40 s), reused after.
CHECKOV_VENV = ROOT / ".local-stack" / "tools" / f"checkov-{CHECKOV_VERSION}"
TERRAFORM_ENV = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


def terraform_binary() -> str:
    found = shutil.which("terraform")
    if not found:
        pytest.skip("terraform is not installed (not in Debian's archive); the HCL checks above still ran")
    return found


def test_terraform_is_formatted() -> None:
    result = subprocess.run(
        [terraform_binary(), "fmt", "-check", "-recursive", "-diff", "infra"],
        cwd=ROOT,
        env=TERRAFORM_ENV,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"run `terraform fmt infra`:\n{result.stdout}{result.stderr}"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def checkov() -> Path:
    binary = CHECKOV_VENV / "bin" / "checkov"
    with locked(CHECKOV_VENV.parent / f"{CHECKOV_VENV.name}.lock"):
        if not binary.exists():
            building = CHECKOV_VENV.with_name(CHECKOV_VENV.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            venv.create(building, with_pip=True)
            install = subprocess.run(
                [
                    str(building / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    f"checkov=={CHECKOV_VERSION}",
                ],
                capture_output=True,
                text=True,
            )
            assert install.returncode == 0, f"installing checkov failed:\n{install.stderr[-3000:]}"
            building.rename(CHECKOV_VENV)
            # The scripts name the interpreter of the directory they were built in.
            for script in (CHECKOV_VENV / "bin").iterdir():
                if script.is_file() and not script.is_symlink():
                    with contextlib.suppress(UnicodeDecodeError):
                        text = script.read_text()
                        if str(building) in text:
                            script.write_text(text.replace(str(building), str(CHECKOV_VENV)))
    return binary


def test_checkov_finds_nothing_unjustified() -> None:
    result = subprocess.run(
        [str(checkov()), "-d", "infra", "--framework", "terraform", "--skip-download", "--output", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},  # no call to PyPI for a newer checkov
    )
    report: Any = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert summary["passed"] >= 20, summary  # it did look at the resources
    # Without a Prisma Cloud key checkov reports no severities: every finding counts, and a check may only be
    # skipped in place with its reason (#checkov:skip=ID:reason).
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert not failed, failed
    for skipped in report["results"]["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} on {skipped['resource']} skipped without a reason"


def shell_scripts() -> list[Path]:
    skip = {".venv", ".local-stack", ".git", "node_modules"}
    scripts = [p for p in ROOT.rglob("*.sh") if not skip & set(p.relative_to(ROOT).parts)]
    scripts += [p for p in (ROOT / ".ci").glob("*") if p.is_file() and p.read_text().startswith("#!/usr/bin/env bash")]
    return sorted(scripts)


def test_shell_scripts_parse_and_pass_shellcheck() -> None:
    scripts = shell_scripts()
    assert ROOT / "infra" / "deploy.sh" in scripts
    for script in scripts:
        parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert parsed.returncode == 0, f"{script}: {parsed.stderr}"
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed (Debian package shellcheck; tools/setup.sh installs it)")
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def dry_run(tmp_path: Path, *extra: str) -> str:
    """infra/deploy.sh --dry-run with a gcloud on PATH that records any call."""
    fake = tmp_path / "bin"
    fake.mkdir(parents=True)
    calls = tmp_path / "gcloud-calls"
    (fake / "gcloud").write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\nexit 1\n')
    (fake / "gcloud").chmod(0o755)
    result = subprocess.run(
        ["bash", "infra/deploy.sh", "--dry-run", *extra, "demo-deploy-check"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), f"a dry run called gcloud: {calls.read_text()}"
    return result.stdout


def gcloud_commands(output: str, *prefix: str) -> list[list[str]]:
    commands = []
    for line in output.splitlines():
        if line.startswith("gcloud "):
            words = shlex.split(line)
            if words[1 : 1 + len(prefix)] == list(prefix):
                commands.append(words)
    return commands


def flags(words: list[str]) -> dict[str, list[str]]:
    """--flag value pairs (and bare --flags, with an empty value)."""
    found: dict[str, list[str]] = {}
    for index, word in enumerate(words):
        if word.startswith("--"):
            value = words[index + 1] if index + 1 < len(words) and not words[index + 1].startswith("--") else ""
            found.setdefault(word, []).append(value)
    return found


def test_the_deploy_script_dry_run_deploys_what_terraform_does(tmp_path: Path) -> None:
    output = dry_run(tmp_path)
    parsed = subprocess.run(["bash", "-n"], input=output, capture_output=True, text=True)
    assert parsed.returncode == 0, f"the dry run's output is not a script: {parsed.stderr}"
    assert not re.search(r"\b[0-9a-f]{32,}\b", output), "a dry run prints no generated secret"

    deploys = {words[3]: flags(words) for words in gcloud_commands(output, "functions", "deploy")}
    terraform = functions_by_entry_point()
    assert len(deploys) == len(terraform)
    for entry_point, (resource_name, body) in terraform.items():
        name = body["name"]
        assert name in deploys, f"deploy.sh does not deploy {name}"
        deploy = deploys[name]
        assert deploy["--entry-point"] == [entry_point]
        account = facts.terraform()["locals"]["function_accounts"][resource_name]["id"]
        assert deploy["--service-account"] == [f"{account}@demo-deploy-check.iam.gserviceaccount.com"]
        trigger = EVENT_TRIGGERS.get(entry_point, {"kind": "http"})
        if trigger["kind"] == "http":
            assert {"--trigger-http", "--allow-unauthenticated"} <= deploy.keys(), name
            assert deploy["--ingress-settings"] == ["all"], name
            continue
        assert "--no-allow-unauthenticated" in deploy, name
        assert deploy["--ingress-settings"] == ["internal-only"], name
        invokers = [w for w in gcloud_commands(output, "functions", "add-invoker-policy-binding") if w[3] == name]
        assert invokers
        assert flags(invokers[0])["--member"] == [
            "serviceAccount:smart-home-trigger@demo-deploy-check.iam.gserviceaccount.com"
        ]
        if trigger["kind"] == "firestore":
            assert set(deploy["--trigger-event-filters"]) == {f"type={facts_firestore_event()}", "database=(default)"}
            assert deploy["--trigger-event-filters-path-pattern"] == [f"document={trigger['document']}"]
            assert deploy["--trigger-location"] == ["nam5"]
            assert "--retry" in deploy
        else:
            assert "--trigger-http" in deploy
            [subscription] = [
                flags(c) for c in gcloud_commands(output, "pubsub", "subscriptions", "create") if "--push-endpoint" in c
            ]
            assert subscription["--topic"] == ["device-state"]
            assert subscription["--push-endpoint"] == ["${REPORT_STATE_URL}"]
            assert subscription["--dead-letter-topic"] == ["device-state-dead-letter"]
            assert subscription["--min-retry-delay"]
            assert subscription["--max-retry-delay"]


def facts_firestore_event() -> str:
    from tests.infra.test_terraform import FIRESTORE_WRITTEN

    return FIRESTORE_WRITTEN


def test_the_deploy_script_sets_the_same_settings_secrets_and_ttl_policies(tmp_path: Path) -> None:
    import yaml

    output = dry_run(tmp_path)
    heredoc = re.search(r"<<'YAML'\n(.*?)\nYAML\n", output, re.S)
    assert heredoc
    environment = yaml.safe_load(heredoc.group(1))
    appended = re.search(r'^grep -v "\^#" (\S+) >> ', output, re.M)
    assert appended
    environment.update(yaml.safe_load(Path(shlex.split(appended.group(1))[0]).read_text()))
    assert set(environment) == set(facts.environment_of("${local.function_environment}"))

    terraform_secrets = {
        body["name"]: {
            s["key"] for s in facts.blocks(facts.block(body, "service_config") or {}, "secret_environment_variables")
        }
        for body in facts.resources("google_cloudfunctions2_function").values()
    }
    for words in gcloud_commands(output, "functions", "deploy"):
        secrets = {value.split("=")[0] for value in flags(words).get("--set-secrets", [])}
        assert secrets == terraform_secrets[words[3]], words[3]

    ttl = {
        (flags(words)["--collection-group"][0], words[5])
        for words in gcloud_commands(output, "firestore", "fields", "ttls", "update")
    }
    assert ttl == set(facts.terraform()["locals"]["ttl_fields"].items())

    created = {words[3] for words in gcloud_commands(output, "secrets", "create")}
    assert created == {body["secret_id"] for body in facts.resources("google_secret_manager_secret").values()}


def test_the_deploy_script_schedules_the_same_jobs_and_builds_the_same_indexes(tmp_path: Path) -> None:
    """scheduler.tf's jobs and firestore.tf's single-field indexes, in deploy.sh too; and neither grants the Cloud
    Scheduler service agent anything (its own role already holds pubsub.topics.publish; scheduler.tf)."""
    output = dry_run(tmp_path)
    topics = {name: body["name"] for name, body in facts.resources("google_pubsub_topic").items()}
    variables = facts.terraform()["variable"]
    jobs = {words[5]: flags(words) for words in gcloud_commands(output, "scheduler", "jobs", "create", "pubsub")}
    terraform_jobs = facts.resources("google_cloud_scheduler_job")
    assert terraform_jobs, "the pending-timeouts sweep"
    assert set(jobs) == {body["name"] for body in terraform_jobs.values()}
    for body in terraform_jobs.values():
        job = jobs[body["name"]]
        target = facts.block(body, "pubsub_target")
        assert target
        topic = re.fullmatch(r"\$\{google_pubsub_topic\.(\w+)\.id\}", target["topic_name"])
        assert topic
        topic_variable = re.fullmatch(r"\$\{var\.(\w+)\}", topics[topic.group(1)])
        assert topic_variable
        assert job["--topic"] == [variables[topic_variable.group(1)]["default"]], body["name"]
        assert job["--schedule"] == [body["schedule"]]
        assert job["--time-zone"] == [body["time_zone"]]
        assert body["region"] == "${var.region}"
        assert job["--location"] == [variables["region"]["default"]]
        data = re.fullmatch(r'\$\{base64encode\("(.*)"\)\}', target["data"])
        assert data, "the message body, as text"
        assert job["--message-body"] == [data.group(1)]
        assert job["--attributes"] == [",".join(f"{k}={v}" for k, v in target["attributes"].items())]
    assert "gcp-sa-cloudscheduler" not in output
    assert "gcp-sa-cloudscheduler" not in json.dumps(facts.terraform()["resource"])

    indexes = {
        (flags(words)["--collection-group"][0], words[5], flags(words)["--index"][0])
        for words in gcloud_commands(output, "firestore", "indexes", "fields", "update")
        if "--index" in words
    }
    terraform_indexes = {
        (
            body["collection"],
            body["field"],
            f"order={index['order'].lower()},query-scope={index['query_scope'].lower()}",
        )
        for name, body in facts.resources("google_firestore_field").items()
        if name != "ttl"
        for index in facts.blocks(facts.block(body, "index_config") or {}, "indexes")
    }
    assert terraform_indexes, "the pending sweep's collection-group index"
    assert indexes == {(group, field, spec.replace("_", "-")) for group, field, spec in terraform_indexes}


FAKE_GCLOUD = """#!{python}
import json, os, sys
argv = sys.argv[1:]
record = {{"argv": argv}}
def flag(name):
    return argv[argv.index(name) + 1] if name in argv else None
if argv[:2] == ["secrets", "versions"] and argv[2] == "add":
    record["stdin_length"] = len(sys.stdin.read())
if argv[:2] == ["functions", "deploy"]:
    source = flag("--source")
    record["source_files"] = sorted(
        os.path.relpath(os.path.join(d, f), source) for d, _, files in os.walk(source) for f in files
    )
    record["env_file"] = open(flag("--env-vars-file")).read()
with open({calls!r}, "a") as log:
    log.write(json.dumps(record) + "\\n")
if argv[-2:] == ["--format", "value(projectNumber)"]:
    print("123456789")
elif argv[:2] == ["functions", "describe"] and "value(serviceConfig.uri)" in argv:
    print("https://report-state-abc-uc.a.run.app")
elif argv[:2] == ["functions", "describe"]:
    print("https://example.cloudfunctions.net/" + argv[2])
elif "describe" in argv:
    sys.exit(1)  # nothing exists yet
"""


def test_the_deploy_script_runs_what_its_dry_run_prints(tmp_path: Path) -> None:
    """A real run against a recording gcloud: the same commands as the dry run, the right files uploaded, the
    settings in the env file, generated secrets piped (never printed), and its temporary files removed."""
    import yaml

    expected = []
    for line in dry_run(tmp_path / "dry").splitlines():
        captured = re.fullmatch(r"[A-Z_]+=\$\((gcloud .*)\)", line)
        piped = line.rpartition("| ")[2] if "| gcloud " in line else None
        command = captured.group(1) if captured else piped or (line if line.startswith("gcloud ") else None)
        if command:
            expected.append(shlex.split(command))
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "calls.jsonl"
    (fake / "gcloud").write_text(FAKE_GCLOUD.format(python=sys.executable, calls=str(calls)))
    (fake / "gcloud").chmod(0o755)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        ["bash", "infra/deploy.sh", "demo-deploy-check"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in calls.read_text().splitlines()]
    # Less the look-ups a real run makes to keep what exists (describe without --format, secret versions).
    ran = [
        ["gcloud", *r["argv"]]
        for r in records
        if ("describe" not in r["argv"] or "--format" in r["argv"]) and r["argv"][:3] != ["secrets", "versions", "list"]
    ]
    placeholders = {
        "${PROJECT_NUMBER}": "123456789",
        "${REPORT_STATE_URL}": "https://report-state-abc-uc.a.run.app",
    }

    def normalized(words: list[str]) -> list[str]:
        out = []
        for word in words:
            for placeholder, value in placeholders.items():
                word = word.replace(placeholder, value)
            out.append("<dir>" if word.startswith(("/", "${SOURCE_DIR}", "${ENV_FILE}")) else word)
        return out

    assert [normalized(w) for w in ran] == [normalized(w) for w in expected]

    listed = subprocess.run(
        ["bash", "infra/deploy.sh", "--list-source"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    terraform_keys = set(facts.environment_of("${local.function_environment}"))
    deploys = [r for r in records if r["argv"][:2] == ["functions", "deploy"]]
    assert len(deploys) == len(functions_by_entry_point())
    for record in deploys:
        assert record["source_files"] == listed, record["argv"][2]
        assert set(yaml.safe_load(record["env_file"])) == terraform_keys
    # One generated version per secret Terraform generates, each 32 random bytes in hex.
    secrets = [r for r in records if r["argv"][:3] == ["secrets", "versions", "add"]]
    assert [r["argv"][3] for r in secrets] == [
        body["secret_id"] for body in facts.resources("google_secret_manager_secret").values()
    ]
    assert [r["stdin_length"] for r in secrets] == [64, 64, 64]
    assert not re.search(r"\b[0-9a-f]{64}\b", result.stdout + result.stderr)
    assert list(scratch.iterdir()) == [], "deploy.sh left its temporary files"
