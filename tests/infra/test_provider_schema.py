"""infra/*.tf checked against the google provider's own schema: every resource and data source type, argument and
nested block exists, blocks are written as blocks and arguments as arguments, and every required one is set.

Where `terraform init` can install the providers (a registry or a mirror in reach), `terraform validate` does the
check. Where it cannot (these machines), the schema comes from HashiCorp's prebuilt bindings of the provider,
@cdktf/provider-google on npm, generated from the provider's schema: the release pinned in tests/infra/provider-schema
(package.json and its lock, installed by tools/setup.sh or here with `npm ci`) is the one generated from the version
infra/versions.tf pins, which test_the_bindings_are_of_the_pinned_provider holds together. The two tests each say in
their skip reason which of the two checks ran.

How the bindings give the schema (read, never run):
- the generated JavaScript (lib/<resource>/index.js) says how each property is written into HCL: for every struct a
  `<struct>ToHclTerraform` function and for every resource its `synthesizeHclAttributes`, mapping each property to
  its Terraform name with `isBlock`, plus the type name (`<Class>.tfResourceType = "google_..."`). The names come from
  the code that writes them, not from the docs (cdktf renames some: `build` is `buildAttribute`);
- the .jsii manifest says which properties are optional (absent `optional`: required by the provider) and which
  struct a block holds, a block of one struct (not a list) being one that may be given at most once.
Every property of the manifest must be found in the JavaScript and the other way round, so a release whose generated
code reads differently fails the extraction loudly instead of checking less. The result is cached beside the package
(node_modules/.schema-cache-*.json): building it takes seconds once, loading it milliseconds.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.infra import facts
from tests.infra.test_tooling import locked

ROOT = facts.ROOT
BINDINGS = ROOT / "tests" / "infra" / "provider-schema"
PACKAGE_NAME = "@cdktf/provider-google"
PACKAGE = BINDINGS / "node_modules" / "@cdktf" / "provider-google"
INSTALL_LOCK = ROOT / ".local-stack" / "tools" / "provider-schema.lock"
# Bump when the extraction changes, so caches built by an older one are not read.
EXTRACTOR_VERSION = 1
# Where a `terraform init` that works keeps the providers between runs.
PLUGIN_CACHE = ROOT / ".local-stack" / "tools" / "terraform-plugins"

# Terraform's own meta-arguments: in no provider's schema.
META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"},
    "data": {"count", "for_each", "depends_on", "provider", "lifecycle"},
    "provider": {"alias", "version"},
}
DYNAMIC_BLOCK_ARGUMENTS = {"for_each", "iterator", "labels", "content"}


# The schema, from the bindings


class SchemaExtractionError(AssertionError):
    """The bindings' generated code does not read as this extraction expects."""


@dataclass(frozen=True)
class Field:
    required: bool
    block: str | None  # the struct a nested block holds; None for an argument
    single: bool = False  # a block that may be given at most once


@dataclass
class Schema:
    package_version: str
    provider_version: str
    provider: str  # the provider block's struct
    types: dict[str, dict[str, str]]  # "resource" / "data" -> type name -> struct of its body
    structs: dict[str, dict[str, Field]]  # struct -> Terraform name -> field

    def to_json(self) -> dict[str, Any]:
        return {
            "package_version": self.package_version,
            "provider_version": self.provider_version,
            "provider": self.provider,
            "types": self.types,
            "structs": {
                name: {key: [f.required, f.block, f.single] for key, f in fields.items()}
                for name, fields in self.structs.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Schema:
        return cls(
            package_version=data["package_version"],
            provider_version=data["provider_version"],
            provider=data["provider"],
            types=data["types"],
            structs={
                name: {key: Field(*value) for key, value in fields.items()} for name, fields in data["structs"].items()
            },
        )


# `function fooBarToHclTerraform(struct) { ... }` (one per struct) and `class FooBar extends cdktf.TerraformResource`.
_STRUCT_FUNCTION = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{$(.*?)^\}$", re.M | re.S)
_CLASS = re.compile(
    r"^class (\w+) extends cdktf\.(TerraformResource|TerraformDataSource|TerraformProvider) \{$(.*?)^\}$", re.M | re.S
)
_TYPE_NAME = re.compile(r'^(\w+)\.tfResourceType = "([\w-]+)";$', re.M)
_SYNTHESIZE_HCL = re.compile(r"^ +synthesizeHclAttributes\(\) \{\s*const attrs = \{(?:\};|$(.*?)^ +\};)$", re.M | re.S)
_HCL_ATTRIBUTE = re.compile(r'^ +"?(\w+)"?: \{\s*value: ([^\n]*),\s*isBlock: (true|false),', re.M)
_FROM_CONFIG = re.compile(r"^ +this\._(\w+)(?:\.internalValue)? = config\.(\w+);$", re.M)
_KINDS = {"TerraformResource": "resource", "TerraformDataSource": "data", "TerraformProvider": "provider"}


def _hcl_attributes(body: str, reference: str) -> dict[str, tuple[str, bool]]:
    """JavaScript property -> (Terraform name, isBlock) of one HCL writer; `reference` finds the property the value is
    read from (`struct.name` in a struct's function, `this._name` in a resource's)."""
    found: dict[str, tuple[str, bool]] = {}
    for terraform_name, value, is_block in _HCL_ATTRIBUTE.findall(body):
        read = re.findall(reference, value)
        if not read:
            raise SchemaExtractionError(f"{terraform_name}: cannot tell which property `{value}` reads")
        found[read[-1]] = (terraform_name, is_block == "true")
    return found


@dataclass
class _Module:
    """What one compiled file of the bindings says."""

    structs: dict[str, dict[str, tuple[str, bool]]] = field(default_factory=dict)  # jsii struct name -> properties
    classes: dict[str, tuple[str, str, dict[str, tuple[str, bool]]]] = field(default_factory=dict)


def _read_module(source: str) -> _Module:
    module = _Module()
    for function, body in _STRUCT_FUNCTION.findall(source):
        module.structs[function[0].upper() + function[1:]] = _hcl_attributes(body, r"struct\.(\w+)")
    type_names = dict(_TYPE_NAME.findall(source))
    for class_name, base, body in _CLASS.findall(source):
        synthesize = _SYNTHESIZE_HCL.search(body)
        if not synthesize or class_name not in type_names:
            raise SchemaExtractionError(f"{class_name}: no synthesizeHclAttributes or tfResourceType")
        by_field = _hcl_attributes(synthesize.group(1) or "", r"this\._(\w+)")
        # The class keeps each config property in a field of its own (config.buildAttribute -> this._build).
        by_config = {config: by_field[private] for private, config in _FROM_CONFIG.findall(body) if private in by_field}
        if len(by_config) != len(by_field):
            raise SchemaExtractionError(f"{class_name}: {set(by_field)} written, {set(by_config)} read from config")
        module.classes[class_name] = (_KINDS[base], type_names[class_name], by_config)
    return module


def _struct_type(type_ref: dict[str, Any], assembly: str) -> tuple[str | None, bool]:
    """(the assembly's struct a property holds or None, whether it holds one struct rather than a list of them)."""
    if "fqn" in type_ref:
        return (type_ref["fqn"], True) if type_ref["fqn"].startswith(assembly + ".") else (None, False)
    if "union" in type_ref:
        found = [_struct_type(t, assembly) for t in type_ref["union"]["types"]]
        structs = [f for f in found if f[0]]
        return structs[0] if structs else (None, False)
    if "collection" in type_ref:
        struct, _ = _struct_type(type_ref["collection"]["elementtype"], assembly)
        return struct, False
    return None, False


def build_schema(package: Path) -> Schema:
    """The schema of every resource, data source and the provider block, from the bindings in `package`."""
    metadata = json.loads((package / "package.json").read_text())
    manifest = json.loads((package / ".jsii").read_text())
    assembly = manifest["name"]
    types: dict[str, dict[str, Any]] = manifest["types"]
    modules: dict[Path, _Module] = {}

    def module_of(fqn: str) -> _Module:
        # src/<module>/index.ts (large ones split into index-structs/structsN.ts), compiled to lib/
        source = Path(types[fqn]["locationInModule"]["filename"])
        if source not in modules:
            compiled = package / "lib" / source.relative_to("src").with_suffix(".js")
            modules[source] = _read_module(compiled.read_text())
        return modules[source]

    structs: dict[str, dict[str, Field]] = {}

    def add_struct(fqn: str, written: dict[str, tuple[str, bool]]) -> str:
        key = fqn.removeprefix(assembly + ".")
        if key in structs:
            return key
        declared = types[fqn]
        own_interfaces = [i for i in declared.get("interfaces", []) if i.startswith(assembly + ".")]
        if own_interfaces:
            raise SchemaExtractionError(f"{fqn} extends {own_interfaces}: inherited properties are not read")
        properties = {p["name"]: p for p in declared.get("properties", [])}
        if set(properties) != set(written):
            raise SchemaExtractionError(
                f"{fqn}: the manifest has {sorted(set(properties) - set(written))} the JavaScript does not write, "
                f"the JavaScript writes {sorted(set(written) - set(properties))} the manifest does not have"
            )
        fields: dict[str, Field] = {}
        structs[key] = fields  # before the nested ones, so a struct that contains itself ends
        for name, prop in properties.items():
            terraform_name, is_block = written[name]
            nested, single = _struct_type(prop["type"], assembly)
            if is_block and not nested:
                raise SchemaExtractionError(f"{fqn}.{name}: a block of no struct")
            nested_key = None
            if nested:
                struct_name = types[nested]["name"]
                nested_written = module_of(nested).structs.get(struct_name)
                if nested_written is None:
                    raise SchemaExtractionError(f"{nested}: no {struct_name[0].lower()}{struct_name[1:]}ToHclTerraform")
                nested_key = add_struct(nested, nested_written)
            # An argument of object type (isBlock false) is written `name = {...}`: an argument here.
            fields[terraform_name] = Field(
                required=not prop.get("optional", False),
                block=nested_key if is_block else None,
                single=single and is_block,
            )
        return key

    by_kind: dict[str, dict[str, str]] = {"resource": {}, "data": {}}
    provider = ""
    for fqn, declared in types.items():
        if declared.get("kind") != "class" or declared.get("base") not in (
            "cdktf.TerraformResource",
            "cdktf.TerraformDataSource",
            "cdktf.TerraformProvider",
        ):
            continue
        found = module_of(fqn).classes.get(declared["name"])
        if found is None:
            raise SchemaExtractionError(f"{fqn}: no class {declared['name']} in its JavaScript")
        kind, type_name, written = found
        [config] = [p for p in declared["initializer"]["parameters"] if p["name"] == "config"]
        key = add_struct(config["type"]["fqn"], written)
        if kind == "provider":
            provider = key
        else:
            by_kind[kind][type_name] = key
    if not provider or len(by_kind["resource"]) < 100:
        raise SchemaExtractionError(f"{package}: found {len(by_kind['resource'])} resources and provider {provider!r}")
    return Schema(
        package_version=metadata["version"],
        provider_version=metadata["cdktf"]["provider"]["version"],
        provider=provider,
        types=by_kind,
        structs=structs,
    )


def pinned_package_version() -> str:
    version: str = json.loads((BINDINGS / "package.json").read_text())["dependencies"][PACKAGE_NAME]
    return version


def installed_package_version() -> str | None:
    try:
        version: str = json.loads((PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version


def install_bindings() -> None:
    """The pinned bindings in tests/infra/provider-schema/node_modules: there already (tools/setup.sh), or installed
    now with `npm ci` from the lock. Skips only when neither they nor npm are here."""
    with locked(INSTALL_LOCK):
        if installed_package_version() == pinned_package_version():
            return
        npm = shutil.which("npm")
        if not npm:
            pytest.skip(
                f"{PACKAGE_NAME} is not installed and npm is not here to install it: install Node.js and npm "
                "(Debian packages nodejs, npm) and run tools/setup.sh"
            )
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=BINDINGS,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert installed.returncode == 0, f"npm ci in {BINDINGS} failed:\n{installed.stderr[-3000:]}"
        assert installed_package_version() == pinned_package_version(), "npm ci installed another version"


@functools.cache
def provider_schema() -> Schema:
    """The schema from the installed bindings, through the cache beside them."""
    install_bindings()
    cache = PACKAGE.parent.parent / f".schema-cache-{pinned_package_version()}-v{EXTRACTOR_VERSION}.json"
    with locked(INSTALL_LOCK):
        if cache.exists():
            return Schema.from_json(json.loads(cache.read_text()))
        schema = build_schema(PACKAGE)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(schema.to_json(), separators=(",", ":")))
        partial.replace(cache)
        return schema


# infra/*.tf against the schema


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: {"resource": 0, "data": 0, "provider": 0})
    other_providers: set[str] = field(default_factory=set)  # "kind type" not the google provider's


def _is_blocks(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _members(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    return ((k, v) for k, v in body.items() if not (k.startswith("__") and k.endswith("__")))


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _check_body(body: dict[str, Any], struct: str, where: str, meta: set[str], schema: Schema, report: Report) -> None:
    fields = schema.structs[struct]
    given: set[str] = set()
    for name, value in _members(body):
        if name == "dynamic" and isinstance(value, list):  # [{block name: {for_each, content: [...]}}]
            for dynamic in value:
                for block_name, spec in _members(dynamic):
                    given.add(block_name)
                    target = fields.get(block_name)
                    if target is None or target.block is None:
                        kind = "an argument, not a block" if target else "unknown block"
                        report.problems.append(
                            f"{where}: dynamic `{block_name}`: {kind}{_did_you_mean(block_name, fields)}"
                        )
                        continue
                    for extra in {k for k, _ in _members(spec)} - DYNAMIC_BLOCK_ARGUMENTS:
                        report.problems.append(f"{where}: dynamic `{block_name}`: unknown argument `{extra}`")
                    for content in spec.get("content", []):
                        _check_body(content, target.block, f"{where}.{block_name}", set(), schema, report)
            continue
        if name in meta:
            continue
        target = fields.get(name)
        as_blocks = _is_blocks(value)
        if target is None:
            kind = "block" if as_blocks else "argument"
            report.problems.append(f"{where}: unknown {kind} `{name}`{_did_you_mean(name, fields)}")
            continue
        if value is not None:
            given.add(name)
        if target.block is None and as_blocks:
            report.problems.append(f"{where}: `{name}` is an argument: write `{name} = ...`, not a block")
        elif target.block is not None and not as_blocks:
            report.problems.append(f"{where}: `{name}` is a block: write `{name} {{ ... }}`, not `{name} = ...`")
        elif target.block is not None:
            if target.single and len(value) > 1:
                report.problems.append(f"{where}: at most one `{name}` block, not {len(value)}")
            for index, inner in enumerate(value):
                suffix = f"[{index}]" if len(value) > 1 else ""
                _check_body(inner, target.block, f"{where}.{name}{suffix}", set(), schema, report)
    for name, target in fields.items():
        if target.required and name not in given:
            kind = "block" if target.block else "argument"
            report.problems.append(f"{where}: missing required {kind} `{name}`")


def check_configuration(directory: Path, schema: Schema) -> Report:
    """Every google resource, data source and provider block of directory/*.tf against the schema."""
    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)
    report = Report()
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        where_file = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        for block in parsed.get("provider", []):
            for name, body in _members(block):
                if name == "google":
                    report.checked["provider"] += 1
                    where = f"{where_file}: provider {name}"
                    _check_body(body, schema.provider, where, META_ARGUMENTS["provider"], schema, report)
                else:
                    report.other_providers.add(f"provider {name}")
        for kind in ("resource", "data", "ephemeral"):
            for block in parsed.get(kind, []):
                for type_name, named in _members(block):
                    if type_name.split("_")[0] != "google" or kind == "ephemeral":
                        # cdktf has no ephemeral resources; other providers have their own schemas.
                        report.other_providers.add(f"{kind} {type_name}")
                        continue
                    known = schema.types[kind]
                    for name, body in _members(named):
                        where = f"{where_file}: {'data.' if kind == 'data' else ''}{type_name}.{name}"
                        if type_name not in known:
                            label = "resource type" if kind == "resource" else "data source"
                            hint = _did_you_mean(type_name, known)
                            report.problems.append(f"{where}: unknown {label} `{type_name}`{hint}")
                            continue
                        report.checked[kind] += 1
                        _check_body(body, known[type_name], where, META_ARGUMENTS[kind], schema, report)
    return report


# terraform validate, where the providers can be installed

VALIDATE_ENV = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


def _terraform_env() -> dict[str, str]:
    PLUGIN_CACHE.mkdir(parents=True, exist_ok=True)
    # A copy of infra/ has no lock file to check cached providers against; let the cache serve it all the same.
    cache = {"TF_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE), "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE": "1"}
    return {**cache, **VALIDATE_ENV}


def terraform_init(directory: Path) -> str | None:
    """None when `terraform init` installed the providers of directory/*.tf, else why not."""
    binary = shutil.which("terraform")
    if not binary:
        return "terraform is not installed"
    try:
        done = subprocess.run(
            [binary, "init", "-backend=false", "-input=false", "-no-color"],
            cwd=directory,
            env=_terraform_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return "terraform init did not finish in 10 minutes"
    if done.returncode == 0:
        return None
    errors = [line.strip() for line in done.stderr.splitlines() if line.startswith("Error:")]
    unreachable = re.search(r"could not connect to [\w.-]+", " ".join(done.stderr.split()))
    why = "; ".join(filter(None, [errors[0] if errors else done.stderr.strip()[-200:], unreachable and unreachable[0]]))
    return f"terraform init could not install the providers ({why})"


def terraform_validate(directory: Path) -> list[str]:
    """The errors `terraform validate` finds in an initialized directory."""
    done = subprocess.run(
        [shutil.which("terraform") or "terraform", "validate", "-json", "-no-color"],
        cwd=directory,
        env=_terraform_env(),
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout)
    return [
        f"{d.get('range', {}).get('filename', '?')}:{d.get('range', {}).get('start', {}).get('line', '?')}: "
        f"{d['summary']}: {d.get('detail', '')}"
        for d in result.get("diagnostics", [])
        if d["severity"] == "error"
    ]


def copy_of_infra(target: Path) -> Path:
    """infra/ without its local state, where init may write its lock file and .terraform/."""
    shutil.copytree(
        facts.INFRA, target, ignore=shutil.ignore_patterns(".terraform", ".build", "*.tfstate*", ".terraform.lock.hcl")
    )
    return target


@pytest.fixture(scope="session")
def initialized_infra(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str | None]:
    """A copy of infra/ and None when terraform and its providers are here, else why not."""
    directory = copy_of_infra(tmp_path_factory.mktemp("validate") / "infra")
    return directory, terraform_init(directory)


# The tests


def pinned_google_provider() -> str:
    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    with (facts.INFRA / "versions.tf").open() as handle:
        parsed = hcl2.load(handle, serialization_options=options)
    [terraform] = parsed["terraform"]
    [providers] = terraform["required_providers"]
    version: str = providers["google"]["version"]
    return version


def test_the_bindings_are_of_the_pinned_provider() -> None:
    pinned = pinned_google_provider()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), (
        f"infra/versions.tf: pin the google provider to one version (not {pinned!r}): the schema it is checked "
        "against is that version's"
    )
    lock = json.loads((BINDINGS / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{PACKAGE_NAME}"]["version"] == pinned_package_version()
    install_bindings()
    generated_from = json.loads((PACKAGE / "package.json").read_text())["cdktf"]["provider"]
    assert generated_from == {"name": "registry.terraform.io/hashicorp/google", "version": pinned}, (
        f"{PACKAGE_NAME} {pinned_package_version()} is generated from {generated_from}, infra/ pins {pinned}: pick "
        f"the release generated from it (`npm view {PACKAGE_NAME}@<release> cdktf`)"
    )


def test_infra_passes_terraform_validate(initialized_infra: tuple[Path, str | None]) -> None:
    directory, unavailable = initialized_infra
    if unavailable:
        pytest.skip(
            f"terraform validate: {unavailable}; test_infra_matches_the_google_provider_schema checks infra/ "
            "against the provider's schema instead"
        )
    errors = terraform_validate(directory)
    assert not errors, "\n".join(errors)
    print("infra/ checked with terraform validate")


def test_infra_matches_the_google_provider_schema(initialized_infra: tuple[Path, str | None]) -> None:
    _, unavailable = initialized_infra
    if not unavailable:
        pytest.skip("terraform validate checked infra/ (test_infra_passes_terraform_validate)")
    schema = provider_schema()
    report = check_configuration(facts.INFRA, schema)
    assert not report.problems, "\n".join(report.problems)
    assert report.checked["resource"] >= 20, report.checked  # it did read the resources
    assert report.checked["provider"] == 1, report.checked
    print(
        f"infra/ checked against hashicorp/google {schema.provider_version} ({PACKAGE_NAME} {schema.package_version}): "
        f"{report.checked}; other providers' blocks not checked: {sorted(report.other_providers)}"
    )


def test_the_schema_reads_what_is_known_of_the_provider() -> None:
    schema = provider_schema()
    bucket = schema.structs[schema.types["resource"]["google_storage_bucket"]]
    assert bucket["name"] == Field(required=True, block=None)
    assert bucket["location"].required
    assert bucket["labels"] == Field(required=False, block=None)
    assert bucket["lifecycle_rule"].block
    assert not bucket["lifecycle_rule"].single
    assert bucket["versioning"].block
    assert bucket["versioning"].single
    rule = schema.structs[bucket["lifecycle_rule"].block]
    for required_block in ("action", "condition"):
        assert rule[required_block] == Field(required=True, block=rule[required_block].block, single=True)
    trigger = schema.structs[schema.types["resource"]["google_cloudbuild_trigger"]]
    assert "build" in trigger, "cdktf's own renames (buildAttribute) are undone"
    policy = schema.structs[schema.types["resource"]["google_monitoring_alert_policy"]]
    assert {name for name, f in policy.items() if f.required} == {"combiner", "conditions", "display_name"}
    project = schema.structs[schema.types["data"]["google_project"]]
    assert not any(f.required for f in project.values())
    assert schema.structs[schema.provider]["default_labels"] == Field(required=False, block=None)


VALID = """
provider "google" {
  project = "demo"
}

data "google_project" "this" {
  project_id = "demo"
}

resource "google_logging_metric" "answers" {
  name   = "answers"
  filter = "jsonPayload.message=\\"fulfillment answer\\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"

    labels {
      key = "intent"
    }
  }

  label_extractors = { intent = "EXTRACT(jsonPayload.intent)" }

  dynamic "bucket_options" {
    for_each = []
    content {
      explicit_buckets {
        bounds = [1000]
      }
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}
"""

TYPOS = {
    "unknown argument": ('  name   = "answers"', '  name   = "answers"\n  filtre = "x"', "unknown argument `filtre`"),
    "unknown nested argument": ('metric_kind = "DELTA"', 'metric_knd = "DELTA"', "unknown argument `metric_knd`"),
    "unknown block": ("  metric_descriptor {", "  metric_descriptr {", "unknown block `metric_descriptr`"),
    "unknown dynamic block": ('dynamic "bucket_options"', 'dynamic "bucket_option"', "`bucket_option`: unknown block"),
    "missing required argument": ('  name   = "answers"\n', "", "missing required argument `name`"),
    "missing required nested argument": ('      key = "intent"\n', "", "missing required argument `key`"),
    "unknown resource type": ('"google_logging_metric"', '"google_loging_metric"', "unknown resource type"),
    "unknown data source": ('data "google_project"', 'data "google_projekt"', "unknown data source"),
    "unknown provider argument": ('  project = "demo"', '  projekt = "demo"', "unknown argument `projekt`"),
    "block written as an argument": (
        '    labels {\n      key = "intent"\n    }',
        '    labels = { key = "intent" }',
        "`labels` is a block",
    ),
    "argument written as a block": (
        '  label_extractors = { intent = "EXTRACT(jsonPayload.intent)" }',
        '  label_extractors {\n    intent = "x"\n  }',
        "`label_extractors` is an argument",
    ),
    "a single block twice": (
        "  lifecycle {",
        '  metric_descriptor {\n    metric_kind = "DELTA"\n    value_type = "INT64"\n  }\n  lifecycle {',
        "at most one `metric_descriptor` block, not 2",
    ),
}


def test_a_valid_configuration_passes(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(VALID)
    report = check_configuration(tmp_path, provider_schema())
    assert report.problems == []
    assert report.checked == {"resource": 1, "data": 1, "provider": 1}


@pytest.mark.parametrize("case", sorted(TYPOS))
def test_a_typo_fails_the_check(case: str, tmp_path: Path) -> None:
    old, new, expected = TYPOS[case]
    assert old in VALID, case
    (tmp_path / "main.tf").write_text(VALID.replace(old, new, 1))
    problems = check_configuration(tmp_path, provider_schema()).problems
    assert any(expected in problem for problem in problems), problems
    assert all(problem.startswith("main.tf: ") for problem in problems), problems
