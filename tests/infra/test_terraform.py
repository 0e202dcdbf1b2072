"""infra/*.tf deploys what the code needs: every entry point with its trigger, every setting, every TTL policy."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra import facts

# The event an event-driven entry point handles. A new cloud_event entry point fails the tests until it is named here
# and deployed with its trigger.
FIRESTORE_WRITTEN = "google.cloud.firestore.document.v1.written"
EVENT_TRIGGERS: dict[str, dict[str, str]] = {
    "sync_on_device_change": {"kind": "firestore", "document": "users/{agentUserId}/devices/{deviceId}"},
    "report_state": {"kind": "pubsub", "topic": "state"},
}
# Settings the code reads that a deployment must NOT set, and why.
LOCAL_ONLY = {
    "FIRESTORE_EMULATOR_HOST": "points the Firestore client at the emulator",
    "PUBSUB_EMULATOR_HOST": "points the Pub/Sub client at the emulator",
    "HOMEGRAPH_ENDPOINT": "points the HomeGraph client at the local stand-in, with anonymous credentials",
    "GCLOUD_PROJECT": "an older name of GOOGLE_CLOUD_PROJECT, read only as a fallback",
}
PUBLIC = "allUsers"


def functions_by_entry_point() -> dict[str, tuple[str, dict[str, Any]]]:
    deployed: dict[str, tuple[str, dict[str, Any]]] = {}
    for resource_name, body in facts.resources("google_cloudfunctions2_function").items():
        build = facts.block(body, "build_config")
        assert build, f"{resource_name}: no build_config"
        entry_point = build["entry_point"]
        assert entry_point not in deployed, f"{entry_point} deployed twice"
        deployed[entry_point] = (resource_name, body)
    return deployed


def references(value: Any, resource_name: str) -> bool:
    return f"google_cloudfunctions2_function.{resource_name}." in str(value)


def invokers(resource_name: str) -> set[str]:
    """Members given roles/run.invoker on the function's service."""
    members = set()
    for body in facts.resources("google_cloud_run_service_iam_member").values():
        if body["role"] != "roles/run.invoker":
            continue
        service = body["service"]
        if references(service, resource_name) or (
            service == "${each.value}" and any(references(v, resource_name) for v in body["for_each"].values())
        ):
            members.add(body["member"])
    return members


def test_every_entry_point_is_deployed_with_its_trigger() -> None:
    deployed = functions_by_entry_point()
    entry_points = facts.entry_points()
    assert {e.name for e in entry_points} <= set(deployed), "entry points of main.py without a function in infra/"
    trigger_account = "${google_service_account.trigger.email}"
    # Event functions still being built are deployed (and checked) before main.py names them.
    pending = [
        facts.EntryPoint(name, facts.ROOT / "main.py", "cloud_event")
        for name in EVENT_TRIGGERS
        if name in deployed and name not in {e.name for e in entry_points}
    ]
    for entry in entry_points + pending:
        resource_name, body = deployed[entry.name]
        service = facts.block(body, "service_config")
        assert service, resource_name
        # Each its own identity with only what it uses: tests/infra/test_iam.py.
        assert service["service_account_email"] == f'${{google_service_account.function["{resource_name}"].email}}'
        trigger = facts.block(body, "event_trigger")
        subscriptions = [
            s
            for s in facts.resources("google_pubsub_subscription").values()
            if references(facts.block(s, "push_config") or {}, resource_name)
        ]
        if entry.signature == "http":
            assert trigger is None, f"{entry.name} is an HTTP function, not event-driven"
            assert not subscriptions, f"{entry.name} is an HTTP function, not event-driven"
            assert service["ingress_settings"] == "ALLOW_ALL", f"Google must reach {entry.name}"
            assert PUBLIC in invokers(resource_name), f"{entry.name} must be public: Google calls it"
            continue
        assert entry.name in EVENT_TRIGGERS, f"{entry.name} handles events: name its trigger in EVENT_TRIGGERS"
        expected = EVENT_TRIGGERS[entry.name]
        assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY", f"{entry.name} must be private"
        assert invokers(resource_name) == {f"serviceAccount:{trigger_account}"}, (
            f"only the trigger invokes {entry.name}"
        )
        if expected["kind"] == "firestore":
            assert trigger, f"{entry.name} needs its Firestore trigger"
            assert trigger["event_type"] == FIRESTORE_WRITTEN
            assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
            assert trigger["trigger_region"] == "${var.firestore_location}", "the trigger lives where the database is"
            assert trigger["service_account_email"] == trigger_account
            filters = {f["attribute"]: f for f in facts.blocks(trigger, "event_filters")}
            assert filters["database"]["value"] == "${google_firestore_database.main.name}"
            assert filters["document"]["value"] == expected["document"]
            assert filters["document"]["operator"] == "match-path-pattern"
        else:
            assert entry.signature == "cloud_event", (
                f"{entry.name} runs as an HTTP function: it must declare its signature"
            )
            assert trigger is None, f"{entry.name} is pushed to by our own subscription (dead-letter policy)"
            assert len(subscriptions) == 1, f"{entry.name}: {len(subscriptions)} push subscriptions"
            subscription = subscriptions[0]
            push = facts.block(subscription, "push_config")
            assert push
            assert (
                push["push_endpoint"] == f"${{google_cloudfunctions2_function.{resource_name}.service_config[0].uri}}"
            )
            assert facts.block(push, "oidc_token") == {"service_account_email": trigger_account}
            assert subscription["topic"] == f"${{google_pubsub_topic.{expected['topic']}.id}}"
            assert facts.block(subscription, "retry_policy"), "retries on"
            dead_letter = facts.block(subscription, "dead_letter_policy")
            assert dead_letter
            assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"


def test_no_function_is_deployed_that_main_py_does_not_name() -> None:
    names = {e.name for e in facts.entry_points()}
    stale = set(functions_by_entry_point()) - names - set(EVENT_TRIGGERS)
    assert not stale, f"deployed but not in main.py: {stale}"


def test_every_setting_the_code_reads_is_set_and_no_local_one() -> None:
    read = facts.settings_read()
    assert {"GOOGLE_CLOUD_PROJECT", "FIRESTORE_DATABASE"} <= set(read), "the scan finds the code's settings"
    for resource_name, body in facts.resources("google_cloudfunctions2_function").items():
        service = facts.block(body, "service_config")
        assert service
        plain = facts.environment_of(service["environment_variables"])
        secret = {s["key"] for s in facts.blocks(service, "secret_environment_variables")}
        assert not plain.keys() & secret, f"{resource_name}: a secret in plain environment variables"
        for name in LOCAL_ONLY:
            assert name not in plain.keys() | secret, f"{resource_name} sets {name}: {LOCAL_ONLY[name]}"
    every_plain = facts.environment_of("${local.function_environment}")
    every_secret = {
        s["key"]
        for body in facts.resources("google_cloudfunctions2_function").values()
        for s in facts.blocks(facts.block(body, "service_config") or {}, "secret_environment_variables")
    }
    missing = {
        name: where
        for name, where in read.items()
        if name not in every_plain and name not in every_secret and name not in LOCAL_ONLY
    }
    assert not missing, f"read by the code, set by no function: {missing}"


def test_the_setting_scan_sees_reads_through_constants_and_helpers(tmp_path: Any) -> None:
    module = tmp_path / "settings.py"
    module.write_text(
        "import os\n"
        "NAME = 'VIA_CONSTANT'\n"
        "def number(name: str, default: float) -> float:\n"
        "    return float(os.environ.get(name) or default)\n"
        "A = os.environ.get('PLAIN')\n"
        "B = os.getenv(NAME)\n"
        "C = os.environ['SUBSCRIPT']\n"
        "D = number('VIA_HELPER', 1.0)\n"
    )
    assert set(facts.settings_read([module])) == {"PLAIN", "VIA_CONSTANT", "SUBSCRIPT", "VIA_HELPER"}
    module.write_text("import os\nname = input()\nvalue = os.environ.get(name.upper())\n")
    with pytest.raises(facts.UnreadableSetting):
        facts.settings_read([module])


def test_ttl_policies_cover_every_expiring_collection() -> None:
    declared = facts.ttl_fields_declared()
    assert declared.get("tokens") == "expiresAt", "the scan reads the Firestore adapters' layout docstrings"
    for module, keys in facts.expiry_fields_written().items():
        undeclared = keys - facts.ttl_fields_in_docstring(facts.ROOT / module)
        assert not undeclared, f"{module} writes {undeclared}: mark the field '(TTL)' in its layout docstring"
    configured = facts.terraform()["locals"]["ttl_fields"]
    assert configured == declared, "infra/firestore.tf ttl_fields must match the layout docstrings' (TTL) fields"
    ttl = facts.resources("google_firestore_field")["ttl"]
    assert ttl["for_each"] == "${local.ttl_fields}"
    assert facts.block(ttl, "ttl_config") == {}


def test_public_functions_are_exactly_the_http_entry_points() -> None:
    public = {
        name for name, (resource_name, _) in functions_by_entry_point().items() if PUBLIC in invokers(resource_name)
    }
    assert public == {e.name for e in facts.entry_points() if e.signature == "http"}


def test_outputs_give_the_three_urls_for_the_developer_console() -> None:
    outputs = facts.terraform()["output"]
    deployed = functions_by_entry_point()
    for output, entry_point in (
        ("fulfillment_url", "fulfillment"),
        ("authorization_url", "authorize"),
        ("token_url", "token"),
    ):
        resource_name = deployed[entry_point][0]
        assert outputs[output]["value"] == f"${{google_cloudfunctions2_function.{resource_name}.url}}"
        assert outputs[output]["description"]
    # What each function runs as: every account of google_service_account.function, none left over from before.
    accounts = outputs["function_service_accounts"]["value"]
    assert "google_service_account.function :" in accounts
    assert accounts.endswith("=> account.email}}")


def test_variables_are_documented_and_nothing_secret_is_in_the_state() -> None:
    tf = facts.terraform()
    for name, variable in tf["variable"].items():
        assert variable.get("description"), f"variable {name} needs a description"
        assert "sensitive" not in variable, f"{name}: secrets are generated into Secret Manager, never variables"
    versions = facts.resources("google_secret_manager_secret_version")
    assert versions, "the generated secrets"
    for name, body in versions.items():
        assert "secret_data" not in body, f"{name}: secret_data lands in the state; use secret_data_wo"
        assert re.fullmatch(r"\$\{ephemeral\.random_password\.\w+\.result\}", body["secret_data_wo"]), name
    assert "random_password" not in tf["resource"], "a random_password resource keeps its value in the state"


def test_the_functions_roles_are_least_privilege() -> None:
    project_roles = {
        body["role"]: body
        for body in facts.resources("google_project_iam_member").values()
        if "google_service_account.function" in body["member"]
    }
    assert set(project_roles) == {"roles/datastore.user"}, "the functions get topic- and secret-level roles only"
    condition = facts.block(project_roles["roles/datastore.user"], "condition")
    assert condition, "Firestore access is limited to the backend's database"
    assert "databases/${var.firestore_database}" in condition["expression"]
    broad = {"roles/owner", "roles/editor", "roles/pubsub.admin", "roles/datastore.owner", "roles/run.admin"}
    for type_name, named in facts.terraform()["resource"].items():
        if type_name.endswith("_iam_member"):
            for name, body in named.items():
                assert body.get("role") not in broad, f"{type_name}.{name}"


def test_tunable_settings_are_the_code_defaults() -> None:
    tunables = facts.environment_of("${local.tunable_settings}")
    defaults = facts.setting_defaults()
    for name, value in tunables.items():
        assert name in defaults, f"{name} in infra/function-settings.yaml is read by no code (with a default)"
        if defaults[name] == "" or value == "":
            assert value == defaults[name], name
        else:
            assert float(value) == float(defaults[name]), f"{name}: {value} in infra, {defaults[name]} in the code"


def test_a_push_delivered_function_reads_the_push_request_as_a_cloudevent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed without an Eventarc trigger, report_state runs under functions-framework's HTTP signature; its
    @functions_framework.cloud_event decorator must still make the Pub/Sub push body a CloudEvent."""
    import base64

    import functions_framework

    pushed = [name for name, trigger in EVENT_TRIGGERS.items() if trigger["kind"] == "pubsub"]
    in_main = [e.name for e in facts.entry_points() if e.name in pushed]
    if not in_main:
        pytest.skip("no push-delivered entry point in main.py yet")
    from functions.reporting import wiring
    from functions.reporting.rejections import Rejections

    rejected: list[bytes] = []

    class Recording:
        def publish(self, topic: str, data: bytes, attributes: Any = None) -> str:
            rejected.append(data)
            return "1"

    monkeypatch.setattr(wiring, "_rejections", Rejections(Recording, lambda: "rejected"))
    for name in in_main:
        app = functions_framework.create_app(target=name, source=str(facts.ROOT / "main.py"), signature_type="http")
        message = {"data": base64.b64encode(b"not a state message").decode(), "messageId": "1", "attributes": {}}
        message["publishTime"] = "2026-01-01T00:00:00Z"
        answer = app.test_client().post("/", json={"message": message, "subscription": "projects/p/subscriptions/s"})
        # An unreadable message is acknowledged (2xx) by contract, and handed back on the rejection topic; a function
        # handed a Flask request would fail.
        assert 200 <= answer.status_code < 300, answer.data[:300]
        assert rejected == [b"not a state message"]


# References: what `terraform validate` would say first, checked here too since it cannot run without the providers
# (tests/infra/test_provider_schema.py checks the arguments against the provider's schema instead).
_RESOURCE_REF = re.compile(r"(?<![\w.])(data\.|ephemeral\.)?((?:google|archive|random)_\w+)\.(\w+)")
_NAMED_REF = re.compile(r"(?<![\w.])(var|local)\.(\w+)")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, inner in value.items() for s in [*_strings(key), *_strings(inner)]]
    if isinstance(value, list):
        return [s for inner in value for s in _strings(inner)]
    return [value] if isinstance(value, str) else []


def references_in(text: str) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """(("resource" / "data" / "ephemeral", type, name) and ("var" / "local", name)) an expression refers to; only
    interpolated text (${...}) holds references, so descriptions that name resources do not count."""
    if "${" not in text:
        return set(), set()
    objects = {
        (kind.rstrip(".") if kind else "resource", type_name, name)
        for kind, type_name, name in _RESOURCE_REF.findall(text)
    }
    return objects, set(_NAMED_REF.findall(text))


def test_every_reference_names_something_declared() -> None:
    import hcl2

    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    declared: set[tuple[str, str, str]] = set()
    named: set[tuple[str, str]] = set()
    used: dict[tuple[str, ...], str] = {}
    for path in sorted(facts.INFRA.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        for kind in ("resource", "data", "ephemeral"):
            for block in parsed.get(kind, []):
                declared.update((kind, type_name, name) for type_name, bodies in block.items() for name in bodies)
        named.update(("var", name) for block in parsed.get("variable", []) for name in block)
        named.update(("local", name) for block in parsed.get("locals", []) for name in block)
        for text in _strings({k: v for k, v in parsed.items() if k != "variable"}):
            objects, values = references_in(text)
            for reference in [*objects, *values]:
                used.setdefault(reference, f"{path.name}: {text[:120]}")
    assert ("resource", "google_service_account", "function") in used, "the scan finds references"
    unknown = {".".join(reference): where for reference, where in used.items() if reference not in declared | named}
    assert not unknown, f"references to nothing declared: {unknown}"


def test_the_reference_scan_sees_a_stale_one() -> None:
    objects, values = references_in(
        "${google_service_account.runtime.email} ${var.region} ${data.google_project.this.number}"
    )
    assert objects == {("resource", "google_service_account", "runtime"), ("data", "google_project", "this")}
    assert values == {("var", "region")}
    assert references_in("the google_service_account.runtime account") == (set(), set())
