"""One service account per function, each with exactly what that function's code uses.

USES says, per entry point, what its code uses: the session key for `authorize` only, the webhook secret for
`fulfillment` only, publishing on the state topic for the functions that publish there, the commands topic for
`fulfillment` only, the rejection topic for `report_state` only. It is held to the code in one direction (a function
may only be granted what the modules its entry point reaches ask for, read with ast), and Terraform (iam.tf,
functions.tf) and deploy.sh must grant exactly it, and hand each secret (as its environment variable) to exactly the
functions that may read it.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra import facts
from tests.infra.test_terraform import functions_by_entry_point
from tests.infra.test_tooling import dry_run, flags, gcloud_commands

FIRESTORE = "firestore"
STATE, COMMANDS, REJECTED = "publish:state", "publish:commands", "publish:rejected"
SESSION_KEY, WEBHOOK = "secret:session_key", "secret:webhook"
USES: dict[str, set[str]] = {
    # the full report after SYNC, virtual results; device commands; signs the calls to the maker's webhook
    "fulfillment": {FIRESTORE, STATE, COMMANDS, WEBHOOK},
    "authorize": {FIRESTORE, SESSION_KEY},  # signs the sign-in pages' CSRF tokens and device cookies
    "token": {FIRESTORE},
    "sync_on_device_change": {FIRESTORE},  # and HomeGraph, which needs no role
    "report_state": {FIRESTORE, REJECTED},  # refused state messages back to the device cloud (and HomeGraph)
}
# The settings' accessors (functions/platform/config.py) that name what a use reaches.
ACCESSORS = {
    "state_topic": STATE,
    "commands_topic": COMMANDS,
    "rejected_topic": REJECTED,
    "account_linking_session_key": SESSION_KEY,
    "webhook_secret": WEBHOOK,
}
TOPICS = {"state": STATE, "commands": COMMANDS, "rejected": REJECTED}  # Terraform's google_pubsub_topic names
DEPLOY_TOPICS = {"device-state": STATE, "device-commands": COMMANDS, "device-state-rejected": REJECTED}
# Each secret a function reads: Terraform's google_secret_manager_secret name, deploy.sh's secret id, and the
# environment variable the function gets it as.
SECRETS = {
    SESSION_KEY: {
        "terraform": "session_key",
        "deploy": "account-linking-session-key",
        "variable": "ACCOUNT_LINKING_SESSION_KEY",
    },
    WEBHOOK: {"terraform": "webhook_secret", "deploy": "webhook-secret", "variable": "WEBHOOK_SECRET"},
}
PROJECT = "demo-deploy-check"


# The code: what each entry point's modules can reach


def _module_path(name: str) -> Path | None:
    for candidate in (
        facts.ROOT / (name.replace(".", "/") + ".py"),
        facts.ROOT / name.replace(".", "/") / "__init__.py",
    ):
        if candidate.exists():
            return candidate
    return None


def _imported(path: Path) -> set[Path]:
    """The modules of functions/ a module imports, at import time or in a function (either may run)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(facts.ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__") + ".__init__"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: -node.level]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        if name.startswith("functions"):
            parts = name.split(".")
            found.update(p for i in range(1, len(parts) + 1) if (p := _module_path(".".join(parts[:i]))) is not None)
    return found


@cache
def reachable_uses(entry_point: str) -> frozenset[str]:
    """What the modules an entry point can reach ask for (an upper bound: a module reached is not a call made)."""
    module = next(e.module for e in facts.entry_points() if e.name == entry_point)
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_imported(path))
    config = facts.FUNCTIONS / "platform" / "config.py"
    uses = {FIRESTORE} if any("firestore" in str(path) for path in seen) else set()
    for path in seen - {config}:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ACCESSORS and getattr(node.value, "id", "") == "config":
                uses.add(ACCESSORS[node.attr])
    return frozenset(uses)


def test_the_table_names_every_entry_point_and_grants_nothing_the_code_cannot_use() -> None:
    assert set(USES) == {e.name for e in facts.entry_points()}
    for entry_point, uses in USES.items():
        assert uses <= reachable_uses(entry_point), f"{entry_point} is granted what its code never asks for"
    for accessor, use in ACCESSORS.items():
        assert any(use in uses for uses in USES.values()), f"config.{accessor}: used by no function in the table"


def test_the_reach_of_the_code_is_read_as_it_is() -> None:
    """The reading finds what the functions do use (so a too blind reading cannot make the check above pass)."""
    assert {STATE, COMMANDS} <= reachable_uses("fulfillment")
    assert SESSION_KEY in reachable_uses("authorize")
    assert WEBHOOK in reachable_uses("fulfillment")
    assert WEBHOOK not in reachable_uses("authorize")
    assert REJECTED in reachable_uses("report_state")
    assert STATE not in reachable_uses("token")


# Terraform


@cache
def account_keys() -> dict[str, str]:
    """google_service_account.function key -> account id."""
    return {key: value["id"] for key, value in facts.terraform()["locals"]["function_accounts"].items()}


def _account_of(member: str) -> str | None:
    found = re.fullmatch(r'serviceAccount:\$\{google_service_account\.function\["(\w+)"\]\.email\}', member)
    return found.group(1) if found else None


def terraform_grants() -> dict[str, set[str]]:
    """Function account key -> what Terraform grants it."""
    granted: dict[str, set[str]] = {key: set() for key in account_keys()}
    for type_name, named in facts.terraform()["resource"].items():
        if not type_name.endswith("_iam_member"):
            continue
        for name, body in named.items():
            member = body["member"]
            if type_name == "google_project_iam_member" and "google_service_account.function[each.key]" in member:
                assert body["for_each"] == "${local.function_accounts}", name
                assert body["role"] == "roles/datastore.user", f"{name}: the only project-level role of a function"
                condition = facts.block(body, "condition")
                assert condition
                assert "databases/${var.firestore_database}" in condition["expression"]
                for key in granted:
                    granted[key].add(FIRESTORE)
                continue
            key = _account_of(member)
            if key is None:
                assert "google_service_account.function" not in member, f"{type_name}.{name}: {member}"
                continue
            if type_name == "google_pubsub_topic_iam_member":
                assert body["role"] == "roles/pubsub.publisher", name
                topic = re.fullmatch(r"\$\{google_pubsub_topic\.(\w+)\.id\}", body["topic"])
                assert topic, name
                granted[key].add(TOPICS[topic.group(1)])
            elif type_name == "google_secret_manager_secret_iam_member":
                assert body["role"] == "roles/secretmanager.secretAccessor", name
                secret = re.fullmatch(r"\$\{google_secret_manager_secret\.(\w+)\.id\}", body["secret_id"])
                assert secret, name
                [use] = [use for use, names in SECRETS.items() if names["terraform"] == secret.group(1)]
                granted[key].add(use)
            else:
                raise AssertionError(f"{type_name}.{name}: a role the table does not know")
    return granted


def test_every_function_runs_as_its_own_account() -> None:
    deployed = functions_by_entry_point()
    keys = account_keys()
    assert sorted(keys) == sorted(resource_name for resource_name, _ in deployed.values())
    assert len(set(keys.values())) == len(keys), "one account each"
    for account_id in keys.values():
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id), f"{account_id}: not a valid account id"
    accounts = facts.resources("google_service_account")
    assert accounts["function"]["for_each"] == "${local.function_accounts}"
    for resource_name, body in deployed.values():
        service = facts.block(body, "service_config")
        assert service
        assert service["service_account_email"] == f'${{google_service_account.function["{resource_name}"].email}}'


def test_terraform_grants_each_function_exactly_what_it_uses() -> None:
    by_resource = {resource_name: entry for entry, (resource_name, _) in functions_by_entry_point().items()}
    granted = terraform_grants()
    assert {by_resource[key]: uses for key, uses in granted.items()} == USES


def test_only_the_functions_that_use_a_secret_receive_it() -> None:
    """The session key goes to authorize only, the webhook secret to the fulfillment only; each function is deployed
    after the grant that lets it read its secret (else its first revision fails to start)."""
    grants = facts.resources("google_secret_manager_secret_iam_member")
    for entry_point, (resource_name, body) in functions_by_entry_point().items():
        service = facts.block(body, "service_config") or {}
        given = {s["key"]: s for s in facts.blocks(service, "secret_environment_variables")}
        expected = {names["variable"]: use for use, names in SECRETS.items() if use in USES[entry_point]}
        assert set(given) == set(expected), entry_point
        for variable, use in expected.items():
            secret = SECRETS[use]["terraform"]
            assert given[variable]["secret"] == f"${{google_secret_manager_secret.{secret}.secret_id}}", variable
            assert given[variable]["version"] == f"${{google_secret_manager_secret_version.{secret}.version}}"
            [grant] = [
                name
                for name, grant in grants.items()
                if grant["secret_id"] == f"${{google_secret_manager_secret.{secret}.id}}"
                and _account_of(grant["member"]) == resource_name
            ]
            assert f"google_secret_manager_secret_iam_member.{grant}" in str(body["depends_on"]), entry_point
    assert set(SECRETS) <= {use for uses in USES.values() for use in uses}, "a secret no function reads"


# deploy.sh


def deploy_grants(output: str) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(account e-mail -> what deploy.sh grants it, function name -> the account it deploys it as)."""
    granted: dict[str, set[str]] = {}

    def grant(member: str, use: str) -> None:
        granted.setdefault(member.removeprefix("serviceAccount:"), set()).add(use)

    for words in gcloud_commands(output, "projects", "add-iam-policy-binding"):
        given = flags(words)
        if given["--role"] == ["roles/datastore.user"]:
            assert "databases/(default)" in given["--condition"][0]
            grant(given["--member"][0], FIRESTORE)
    for words in gcloud_commands(output, "pubsub", "topics", "add-iam-policy-binding"):
        given = flags(words)
        if words[4] in DEPLOY_TOPICS:
            assert given["--role"] == ["roles/pubsub.publisher"]
            grant(given["--member"][0], DEPLOY_TOPICS[words[4]])
    by_secret_id = {names["deploy"]: use for use, names in SECRETS.items()}
    for words in gcloud_commands(output, "secrets", "add-iam-policy-binding"):
        given = flags(words)
        assert words[3] in by_secret_id, f"{words[3]}: a secret the table does not know"
        assert given["--role"] == ["roles/secretmanager.secretAccessor"]
        grant(given["--member"][0], by_secret_id[words[3]])
    deployed_as = {
        words[3]: flags(words)["--service-account"][0] for words in gcloud_commands(output, "functions", "deploy")
    }
    return granted, deployed_as


def test_the_deploy_script_grants_each_function_exactly_what_it_uses(tmp_path: Path) -> None:
    output = dry_run(tmp_path)
    granted, deployed_as = deploy_grants(output)
    keys = account_keys()
    created = {words[4] for words in gcloud_commands(output, "iam", "service-accounts", "create")}
    assert set(keys.values()) <= created
    for entry_point, (resource_name, body) in functions_by_entry_point().items():
        account = f"{keys[resource_name]}@{PROJECT}.iam.gserviceaccount.com"
        assert deployed_as[body["name"]] == account, body["name"]
        assert granted.get(account, set()) == USES[entry_point], entry_point
    secrets = {
        words[3]: set(flags(words).get("--set-secrets", [])) for words in gcloud_commands(output, "functions", "deploy")
    }
    for entry_point, (_, body) in functions_by_entry_point().items():
        expected = {
            f"{names['variable']}={names['deploy']}:latest"
            for use, names in SECRETS.items()
            if use in USES[entry_point]
        }
        assert secrets[body["name"]] == expected, body["name"]


# Settings taken from variables default to the code's defaults


def _variable_of(expression: Any) -> str | None:
    found = re.fullmatch(r"\$\{(?:tostring\()?var\.(\w+)\)?\}", str(expression))
    return found.group(1) if found else None


def test_settings_infra_takes_from_variables_default_to_the_codes_defaults(tmp_path: Path) -> None:
    import yaml

    defaults = facts.setting_defaults()
    variables = facts.terraform()["variable"]
    base = facts.terraform()["locals"]["base_environment"]
    checked = []
    for setting, expression in base.items():
        variable = _variable_of(expression)
        if variable is None or "default" not in variables[variable] or setting not in defaults:
            continue
        assert str(variables[variable]["default"]) == defaults[setting], f"{setting}: var.{variable}"
        checked.append(setting)
    assert {"ACCOUNT_LINKING_ACCENT_COLOR", "ACCOUNT_LINKING_CLIENT_IP_HOP", "ACCOUNT_LINKING_LOGO"} <= set(checked)
    heredoc = re.search(r"<<'YAML'\n(.*?)\nYAML\n", dry_run(tmp_path), re.S)
    assert heredoc
    deployed = yaml.safe_load(heredoc.group(1))
    for setting in checked:
        assert str(deployed[setting]) == defaults[setting], f"deploy.sh's default of {setting}"
