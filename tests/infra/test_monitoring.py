"""infra/monitoring.tf: Google's Home Vitals gates in Cloud Monitoring. The metrics read only the log fields its
contract (the comment at its top) names, each device result counts once as a success or a failure, one alert policy
and one chart per gate at Google's thresholds, per device type, and the alerts notify var.alert_notification_channels.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra import facts
from tests.infra.test_tooling import TERRAFORM_ENV

MONITORING = facts.INFRA / "monitoring.tf"
SUCCESS_GATE = 0.995  # Google: calls to HomeGraph, QUERY and EXECUTE succeed at least this often
LATENCY_GATE_MS = 1000  # Google: QUERY and EXECUTE p90 at most this
INTENTS = {"QUERY", "EXECUTE"}
DEVICE_TYPE = "metric.label.device_type"
DISTRIBUTIONS = {"device_latency", "report_freshness"}  # the two google_logging_metric resources of their own


def contract() -> dict[str, set[str]]:
    """Log message -> its fields, from the comment that opens monitoring.tf:

    #   "fulfillment answer"          one per answer
    #       intent        SYNC | QUERY | ...
    """
    fields: dict[str, set[str]] = {}
    message = None
    for line in MONITORING.read_text().splitlines():
        if not line.startswith("#"):
            break
        opened = re.match(r'#\s+"([^"]+)"\s', line)
        field = re.match(r"#\s{7}(\w+)\s{2,}", line)
        if opened:
            message = opened.group(1)
            fields[message] = set()
        elif field and message:
            fields[message].add(field.group(1))
    return fields


def local(name: str) -> Any:
    return facts.terraform()["locals"][name]


_WHOLE_REFERENCE = re.compile(r"\$\{local\.(\w+)((?:\.\w+)*)\}")
_INNER_REFERENCE = re.compile(r"\$\{local\.(\w+)\}")


def resolved(value: Any) -> Any:
    """value with references to locals replaced by what they hold, as far as that is plain data: `${local.x.y}` as a
    whole value by the value, `${local.x}` inside text by the text of a string or number. Expressions (for, merge)
    stay as they are."""
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v) for v in value]
    if not isinstance(value, str):
        return value
    whole = _WHOLE_REFERENCE.fullmatch(value)
    if whole:
        target = local(whole.group(1))
        for attribute in filter(None, whole.group(2).split(".")):
            if not isinstance(target, dict):
                return value
            target = target[attribute]
        return resolved(target)

    def inline(match: re.Match[str]) -> str:
        target = resolved(local(match.group(1)))
        return str(target) if isinstance(target, str | int | float) else match.group(0)

    return _INNER_REFERENCE.sub(inline, value)


def counters() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = resolved(local("vitals_counters"))
    return found


def label_keys(labels: Any) -> set[str]:
    """The keys of a counter's labels: a map, or merge() of a local map and a literal one."""
    if isinstance(labels, dict):
        return set(labels)
    merged = re.fullmatch(r"\$\{merge\(local\.(\w+), \{(.*)\}\)\}", labels)
    assert merged, f"labels must be a map or merge(local map, {{...}}), not {labels}"
    return set(resolved(local(merged.group(1)))) | set(re.findall(r"(\w+) = ", merged.group(2)))


def series_labels() -> dict[str, set[str]]:
    """local.vitals_series key -> the labels its metric has."""
    labels = {key: label_keys(counter["labels"]) for key, counter in counters().items()}
    metrics = facts.resources("google_logging_metric")
    for key in DISTRIBUTIONS:
        descriptor = facts.block(metrics[key], "metric_descriptor") or {}
        labels[key] = {label["key"] for label in facts.blocks(descriptor, "labels")}
        assert set(metrics[key]["label_extractors"]) == labels[key], f"{key}: an extractor for each label"
    return labels


def series_read(filter_text: str) -> tuple[str, set[str]]:
    """(the local.vitals_series key, the metric labels) an alert's or chart's filter reads."""
    [key] = re.findall(r"local\.vitals_series\.(\w+)", filter_text)
    return key, set(re.findall(r"metric\.label\.(\w+)", filter_text))


def test_the_metrics_read_only_the_fields_the_contract_names() -> None:
    logged = contract()
    assert set(logged) == {"fulfillment answer", "fulfillment device result", "homegraph call", "device reported"}
    assert {"intent", "deviceType", "status", "errorCode", "latencyMs", "exempt"} <= logged["fulfillment device result"]
    metrics = facts.resources("google_logging_metric")
    definitions = [(key, c["filter"], json.dumps(c["labels"])) for key, c in counters().items()]
    for key in DISTRIBUTIONS:
        body = resolved(metrics[key])
        definitions.append((key, body["filter"], json.dumps([body["label_extractors"], body["value_extractor"]])))
    assert set(metrics) == {"vitals"} | DISTRIBUTIONS
    for key, filter_text, extracted in definitions:
        assert 'resource.type="cloud_run_revision"' in filter_text, f"{key}: Cloud Functions (2nd gen) logs"
        [message] = re.findall(r'jsonPayload\.message="([^"]+)"', filter_text)
        assert message in logged, f"{key} reads {message!r}, a line the contract does not name"
        read = set(re.findall(r"jsonPayload\.(\w+)", filter_text + extracted)) - {"message"}
        assert read <= logged[message], f"{key} reads {read - logged[message]}, not fields of {message!r}"


def test_every_device_result_counts_once_as_a_success_or_a_failure() -> None:
    every = counters()
    results, rule = resolved(local("device_result_lines")), resolved(local("device_succeeded"))
    assert every["device_results"]["filter"] == results
    assert every["device_successes"]["filter"] == f"{results} AND {rule}"
    assert every["device_failures"]["filter"] == f"{results} AND NOT {rule}"
    assert 'jsonPayload.intent=("QUERY" OR "EXECUTE")' in results
    # SUCCESS and PENDING succeed; so does any result the code marks exempt (Google's exempted codes, non-blocking
    # exceptions such as lowBattery).
    assert rule == '(jsonPayload.status=("SUCCESS" OR "PENDING") OR jsonPayload.exempt=true)'
    calls, succeeded = resolved(local("homegraph_call_lines")), resolved(local("homegraph_succeeded"))
    assert every["homegraph_calls"]["filter"] == calls
    assert every["homegraph_call_successes"]["filter"] == f"{calls} AND {succeeded}"
    assert every["homegraph_call_failures"]["filter"] == f"{calls} AND NOT {succeeded}"
    assert succeeded == "(jsonPayload.status>=200 AND jsonPayload.status<300)"


def test_latency_buckets_have_a_bound_at_the_gate() -> None:
    bounds = local("latency_bounds_ms")
    assert bounds == sorted(bounds)
    assert LATENCY_GATE_MS in bounds, "p90 against 1000 ms is read at a bucket bound"
    for key in DISTRIBUTIONS:
        body = facts.resources("google_logging_metric")[key]
        buckets = facts.block(facts.block(body, "bucket_options") or {}, "explicit_buckets")
        assert buckets == {"bounds": "${local.latency_bounds_ms}"}, key
        assert (facts.block(body, "metric_descriptor") or {})["value_type"] == "DISTRIBUTION", key


def test_the_gates_are_googles() -> None:
    assert local("vitals_success_gate") == SUCCESS_GATE
    assert local("vitals_failure_ceiling") == "${1 - local.vitals_success_gate}"
    assert local("vitals_latency_gate_ms") == LATENCY_GATE_MS
    assert set(re.findall(r'"(\w+)"', local("vitals_intents"))) == INTENTS


def test_one_alert_policy_per_gate_notifying_the_channels() -> None:
    policies = facts.resources("google_monitoring_alert_policy")
    assert set(policies) == {"homegraph_success", "fulfillment_success", "fulfillment_latency"}
    labels = series_labels()
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.alert_notification_channels}", name
        assert facts.block(policy, "documentation"), f"{name}: tell whoever is paged what it means"
        [condition] = facts.blocks(policy, "conditions")
        threshold = facts.block(condition, "condition_threshold")
        assert threshold, name
        assert threshold["comparison"] == "COMPARISON_GT", name
        read = {"filter": series_read(threshold["filter"])}
        if "denominator_filter" in threshold:
            read["denominator_filter"] = series_read(threshold["denominator_filter"])
        for key, used in read.values():
            assert used <= labels[key], f"{name} filters on {used - labels[key]}, labels {key} does not have"
        aggregations = [resolved(facts.block(threshold, "aggregations"))]
        if "denominator_filter" in threshold:
            aggregations.append(resolved(facts.block(threshold, "denominator_aggregations")))
        for aggregation in aggregations:
            assert aggregation["alignment_period"] == local("vitals_window"), name
        per_device_type = all(a.get("group_by_fields") == [DEVICE_TYPE] for a in aggregations)
        if name == "homegraph_success":
            # Google grades calls to HomeGraph over the whole project.
            assert "for_each" not in policy
            assert (read["filter"][0], read["denominator_filter"][0]) == ("homegraph_call_failures", "homegraph_calls")
            assert not any("group_by_fields" in a for a in aggregations)
            assert threshold["threshold_value"] == "${local.vitals_failure_ceiling}"
            continue
        assert policy["for_each"] == "${local.vitals_intents}", name
        assert per_device_type, f"{name}: Google grades each device type"
        assert 'metric.label.intent="${each.key}"' in threshold["filter"], name
        if name == "fulfillment_success":
            assert (read["filter"][0], read["denominator_filter"][0]) == ("device_failures", "device_results")
            assert threshold["threshold_value"] == "${local.vitals_failure_ceiling}"
            assert 'metric.label.intent="${each.key}"' in threshold["denominator_filter"]
        else:
            assert read["filter"][0] == "device_latency"
            assert aggregations[0]["cross_series_reducer"] == "REDUCE_PERCENTILE_90"
            assert threshold["threshold_value"] == "${local.vitals_latency_gate_ms}"


def test_the_notification_channels_are_a_variable_empty_by_default() -> None:
    variable = facts.terraform()["variable"]["alert_notification_channels"]
    assert variable["type"] == "${list(string)}"
    assert variable["default"] == []


def chart_series(widget: dict[str, Any]) -> list[tuple[str, set[str], Any, str]]:
    """(series key, labels filtered on, aggregation, filter) of every query in a chart."""
    read = []
    for data_set in widget["xyChart"]["dataSets"]:
        query = data_set["timeSeriesQuery"]
        parts = (
            [query["timeSeriesFilterRatio"]["numerator"], query["timeSeriesFilterRatio"]["denominator"]]
            if "timeSeriesFilterRatio" in query
            else [query["timeSeriesFilter"]]
        )
        for part in parts:
            key, labels = series_read(part["filter"])
            read.append((key, labels, resolved(part["aggregation"]), part["filter"]))
    return read


def test_the_dashboard_has_one_chart_per_gate_per_device_type_with_the_threshold() -> None:
    dashboard = facts.resources("google_monitoring_dashboard")
    assert dashboard["vitals"]["dashboard_json"] == "${jsonencode(local.vitals_dashboard)}"
    widgets = resolved(local("vitals_dashboard"))["gridLayout"]["widgets"]
    charts = [w for w in widgets if "xyChart" in w]
    labels = series_labels()
    gates: dict[str, Any] = {}
    for chart in charts:
        read = chart_series(chart)
        for key, used, _, _ in read:
            assert used <= labels[key], f"{chart['title']}: {key} has no labels {used - labels[key]}"
        keys = {key for key, *_ in read}
        intents = {i for *_, text in read for i in re.findall(r'metric\.label\.intent="(\w+)"', text)}
        gate = "/".join(sorted(keys)) + "".join(f" {i}" for i in sorted(intents))
        assert gate not in gates, f"two charts of {gate}"
        gates[gate] = chart
        for threshold in chart["xyChart"].get("thresholds", []):
            # Monitoring refuses colour and direction on an xyChart's thresholds.
            assert set(threshold) <= {"label", "value", "targetAxis"}, chart["title"]
        per_device_type = all(
            isinstance(a, dict) and a.get("groupByFields") == [DEVICE_TYPE] for _, _, a, _ in read
        ) or all(isinstance(a, str) and "per_device_type" in a for _, _, a, _ in read)
        if keys != {"homegraph_call_successes", "homegraph_calls"}:
            assert per_device_type, f"{chart['title']}: a line per device type"
    success = [{"value": SUCCESS_GATE}]
    latency = [{"value": LATENCY_GATE_MS}]
    expected = {
        "homegraph_call_successes/homegraph_calls": success,
        "device_results/device_successes EXECUTE": success,
        "device_results/device_successes QUERY": success,
        "device_latency EXECUTE": latency,
        "device_latency QUERY": latency,
        "report_freshness": [],  # no threshold of Google's: state accuracy it grades itself
    }
    assert set(gates) == set(expected)
    for gate, thresholds in expected.items():
        drawn = [{"value": t["value"]} for t in gates[gate]["xyChart"].get("thresholds", [])]
        assert drawn == thresholds, gate
    for gate in ("device_latency EXECUTE", "device_latency QUERY"):
        [(_, _, aggregation, _)] = chart_series(gates[gate])
        assert aggregation["crossSeriesReducer"] == "REDUCE_PERCENTILE_90", gate


def test_the_dashboard_and_the_metrics_render(tmp_path: Path) -> None:
    """Terraform itself evaluates monitoring.tf's locals (no provider needed): the dashboard's JSON, every metric
    type it reads defined here."""
    binary = shutil.which("terraform")
    if not binary:
        pytest.skip("terraform is not installed; the HCL checks above still ran")
    text = MONITORING.read_text()
    blocks = re.findall(r"^locals \{\n.*?^\}\n", text, re.M | re.S)
    assert len(blocks) >= 3, "monitoring.tf's locals blocks (terraform fmt puts them at the start of a line)"
    outputs = {
        "dashboard": "jsonencode(local.vitals_dashboard)",
        "names": "local.vitals_metric_names",
        "counters": "local.vitals_counters",
    }
    module = "\n".join(blocks) + "".join(f'\noutput "{k}" {{\n  value = {v}\n}}\n' for k, v in outputs.items())
    (tmp_path / "main.tf").write_text(module)
    for command in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
        done = subprocess.run([binary, *command], cwd=tmp_path, env=TERRAFORM_ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    shown = subprocess.run(
        [binary, "output", "-json"], cwd=tmp_path, env=TERRAFORM_ENV, capture_output=True, text=True, check=True
    )
    values = {name: output["value"] for name, output in json.loads(shown.stdout).items()}
    dashboard = json.loads(values["dashboard"])
    names = set(values["names"].values())
    assert names == {c["name"] for c in values["counters"].values()} | {values["names"][key] for key in DISTRIBUTIONS}
    read = set(re.findall(r'metric\.type=\\"logging\.googleapis\.com/user/([\w/]+)\\"', values["dashboard"]))
    assert read, "the dashboard reads the metrics"
    assert read <= names, f"the dashboard reads metrics not defined: {read - names}"
    assert "${metric.labels.device_type}" in values["dashboard"], "legends name the device type"
    charts = [w["xyChart"] for w in dashboard["gridLayout"]["widgets"] if "xyChart" in w]
    thresholds = [t["value"] for chart in charts for t in chart.get("thresholds", [])]
    assert sorted(thresholds) == [SUCCESS_GATE] * 3 + [LATENCY_GATE_MS] * 2


LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def module_string_constants(tree: ast.Module) -> dict[str, str]:
    """NAME -> text of a module's top-level `NAME = "text"` assignments."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({target.id: node.value.value for target in node.targets if isinstance(target, ast.Name)})
    return found


def logged_messages(tree: ast.Module, shared: dict[str, str]) -> set[str]:
    """The messages a module passes to a logger call: a string literal, or a name (`NAME`, `module.NAME`) of a
    module-level string constant of its own or of the shared ones."""
    own = module_string_constants(tree)
    messages: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS):
            continue
        args = node.args[1:] if node.func.attr == "log" else node.args
        if not args:
            continue
        message = args[0]
        if isinstance(message, ast.Constant) and isinstance(message.value, str):
            messages.add(message.value)
        elif isinstance(message, ast.Name) and message.id in own:
            messages.add(own[message.id])
        elif isinstance(message, ast.Attribute) and message.attr in shared:
            messages.add(shared[message.attr])
    return messages


def dict_keys(tree: ast.Module) -> set[str]:
    """Every string key a module writes into a dict (the `extra=` fields of its log lines): the keys of its dict
    literals, and those it sets one by one (`fields["key"] = ...`)."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            keys.add(node.slice.value)
    return keys


def test_the_code_logs_the_fields_the_metrics_read() -> None:
    """Each contract line is logged by a deployed module (a logger call with its message), and that module writes
    every field the contract names for it as a key of its log fields: a renamed field would leave a metric
    silently empty, a line nobody logs would leave a chart empty."""
    trees = {path: ast.parse(path.read_text()) for path in facts.runtime_modules()}
    shared: dict[str, str] = {}
    for tree in trees.values():
        shared.update(module_string_constants(tree))
    for message, fields in contract().items():
        writers = [path for path, tree in trees.items() if message in logged_messages(tree, shared)]
        assert writers, f"no deployed module logs {message!r}"
        for path in writers:
            missing = fields - dict_keys(trees[path])
            assert not missing, f"{path.relative_to(facts.ROOT)} logs {message!r} without the fields {missing}"
