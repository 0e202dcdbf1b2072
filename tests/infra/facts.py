"""What the code needs from a deployment, read from the sources, and what infra/ provides, read from the Terraform.

The code side is read statically (ast and the Firestore adapters' layout docstrings), so the checks follow the code
as it grows without a list to keep in step by hand.
"""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
FUNCTIONS = ROOT / "functions"


# The code


@dataclass(frozen=True)
class EntryPoint:
    name: str
    module: Path
    signature: str  # "http" or "cloud_event", from its functions_framework decorator


def entry_points() -> list[EntryPoint]:
    """Every name main.py exports, with the decorator of the function it imports."""
    tree = ast.parse((ROOT / "main.py").read_text())
    exported: list[str] = []
    imported: dict[str, Path] = {}
    # The imports may sit under `if TYPE_CHECKING:` when main.py resolves its names lazily (PEP 562).
    nested = [inner for node in tree.body if isinstance(node, ast.If) for inner in node.body]
    for node in [*tree.body, *nested]:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = ROOT / (node.module.replace(".", "/") + ".py")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            exported = list(ast.literal_eval(node.value))
    found = []
    for name in exported:
        module = imported[name]
        found.append(EntryPoint(name, module, _decorator_signature(module, name)))
    return found


def _decorator_signature(module: Path, name: str) -> str:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr in ("http", "cloud_event"):
                    return target.attr
            raise AssertionError(f"{module}: {name} has no @functions_framework.http or .cloud_event decorator")
    raise AssertionError(f"{module} defines no function {name}")


SOURCE_RULES = INFRA / "source_files.json"  # the one definition of what Cloud Functions gets


@cache
def deployed_source() -> tuple[str, ...]:
    """The files uploaded as the functions' source (repository paths), as `infra/deploy.sh --list-source` prints
    them from infra/source_files.json; tests/infra/test_source.py checks Terraform's list is the same."""
    listed = subprocess.run(
        ["bash", str(INFRA / "deploy.sh"), "--list-source"], capture_output=True, text=True, check=True
    )
    return tuple(listed.stdout.splitlines())


def runtime_modules() -> list[Path]:
    """The Python modules the functions run: the deployed ones under functions/."""
    return [ROOT / name for name in deployed_source() if name.startswith("functions/") and name.endswith(".py")]


class UnreadableSetting(AssertionError):
    pass


def _is_environ_read(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "get":
        owner = func.value
        return (isinstance(owner, ast.Attribute) and owner.attr == "environ") or (
            isinstance(owner, ast.Name) and owner.id == "environ"
        )
    if isinstance(func, ast.Attribute) and func.attr == "getenv":
        return True
    return isinstance(func, ast.Name) and func.id == "getenv"


def _environ_reads(tree: ast.AST) -> list[tuple[ast.expr, ast.AST]]:
    """(the name expression, the node) of every os.environ.get / os.getenv / os.environ[...] in the tree."""
    reads: list[tuple[ast.expr, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_environ_read(node) and node.args:
            reads.append((node.args[0], node))
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
            and isinstance(node.ctx, ast.Load)
        ):
            reads.append((node.slice, node))
    return reads


def settings_read(modules: list[Path] | None = None) -> dict[str, list[str]]:
    """Every environment variable the modules read -> where. Reads through a module constant or through a helper
    whose parameter names the variable (config._positive_number("X", ...)) are followed; anything else is an error,
    so no read escapes the check."""
    found: dict[str, list[str]] = {}
    for path in modules if modules is not None else runtime_modules():
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        helpers: dict[str, int] = {}  # function name -> index of the parameter that names the variable
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef):
                params = [arg.arg for arg in function.args.args]
                for name_expr, _ in _environ_reads(function):
                    if isinstance(name_expr, ast.Name) and name_expr.id in params:
                        helpers[function.name] = params.index(name_expr.id)
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        for name_expr, node in _environ_reads(tree):
            line = f"{where}:{getattr(node, 'lineno', '?')}"
            if isinstance(name_expr, ast.Constant) and isinstance(name_expr.value, str):
                found.setdefault(name_expr.value, []).append(line)
            elif isinstance(name_expr, ast.Name) and name_expr.id in constants:
                found.setdefault(constants[name_expr.id], []).append(line)
            elif not any(
                isinstance(name_expr, ast.Name)
                and isinstance(f, ast.FunctionDef)
                and f.name in helpers
                and name_expr.id in [a.arg for a in f.args.args]
                for f in ast.walk(tree)
            ):
                raise UnreadableSetting(f"{line}: name the environment variable with a string or a module constant")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
                index = helpers[node.func.id]
                argument = node.args[index] if len(node.args) > index else None
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.setdefault(argument.value, []).append(f"{where}:{node.lineno}")
                else:
                    raise UnreadableSetting(
                        f"{where}:{node.lineno}: {node.func.id}() needs the variable's name as text"
                    )
    return found


_LAYOUT_ENTRY = re.compile(r"^(\s+)([\w{}()./@-]*/\{[^}]*\})\s{2,}(.*)$")
_TTL_FIELD = re.compile(r"(\w+) \(TTL\)")
_TTL_DOTTED = re.compile(r"\b([a-z]\w*)\.(\w*[Ee]xpires?At)\b")
_EXPIRY_KEY = re.compile(r"""["'](\w*[Ee]xpires?At)["']\s*:""")


def ttl_fields_declared() -> dict[str, str]:
    """Collection group -> TTL field, from the deployed modules' Firestore layout docstrings (the adapters live in
    their features and in functions/platform), which mark them either in the entry

        tokens/{sha256 of the token}   kind, agentUserId, expiresAt (TTL), ...

    or as group.field in a sentence naming TTL policies: "TTL policies (infra) on reportQueue.expireAt ...".
    """
    declared: dict[str, str] = {}
    for path in runtime_modules():
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        for group, field in _TTL_DOTTED.findall(" ".join(p for p in docstring.split("\n\n") if "TTL" in p)):
            previous = declared.setdefault(group, field)
            assert previous == field, f"{group}: two TTL fields, {previous} and {field}"
        entries: list[tuple[str, str]] = []
        for line in docstring.splitlines():
            match = _LAYOUT_ENTRY.match(line)
            if match:
                entries.append((match.group(2), match.group(3)))
            elif entries and line.startswith(" ") and line.strip():
                entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
        for document_path, fields in entries:
            for field in _TTL_FIELD.findall(fields):
                group = document_path.split("/")[-2]
                previous = declared.setdefault(group, field)
                assert previous == field, f"{group}: two TTL fields, {previous} and {field}"
    return declared


def expiry_fields_written() -> dict[str, set[str]]:
    """Deployed module -> the expiry-like field names it writes as dict keys (expiresAt, ...)."""
    written: dict[str, set[str]] = {}
    for path in runtime_modules():
        keys = set(_EXPIRY_KEY.findall(path.read_text()))
        if keys:
            written[str(path.relative_to(ROOT))] = keys
    return written


def ttl_fields_in_docstring(path: Path) -> set[str]:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return set(_TTL_FIELD.findall(docstring)) | {field for _, field in _TTL_DOTTED.findall(docstring)}


def setting_defaults(modules: list[Path] | None = None) -> dict[str, str]:
    """Environment variable -> the default the code gives it where it reads it (os.environ.get("X", "10"), or a
    helper("X", 10.0)), as text."""
    defaults: dict[str, str] = {}
    for path in modules if modules is not None else runtime_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
                and isinstance(node.args[0].value, str)  # type: ignore[attr-defined]
                and node.args[0].value.isupper()  # type: ignore[attr-defined]
            ):
                defaults[node.args[0].value] = str(node.args[1].value)  # type: ignore[attr-defined]
    return defaults


# The Terraform


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not (k.startswith("__") and k.endswith("__"))}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@cache
def terraform() -> dict[str, Any]:
    """All of infra/*.tf: {"resource": {type: {name: body}}, "data": ..., "locals": {...}, "variable": {...},
    "output": {...}}. Strings keep Terraform's interpolation syntax ("${var.region}"); literals lose their quotes."""
    options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    merged: dict[str, Any] = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as handle:
            parsed = _clean(hcl2.load(handle, serialization_options=options))
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_name, named in block.items():
                    for name, body in named.items():
                        assert name not in merged[kind].setdefault(type_name, {}), f"{type_name}.{name} twice"
                        merged[kind][type_name][name] = body
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
    return merged


def resources(type_name: str) -> dict[str, Any]:
    found: dict[str, Any] = terraform()["resource"].get(type_name, {})
    return found


def block(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A nested block (hcl2 gives a list of one)."""
    value = body.get(name)
    if isinstance(value, list):
        assert len(value) == 1, f"{name}: {len(value)} blocks"
        value = value[0]
    assert value is None or isinstance(value, dict)
    return value


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


_LOCAL_REF = re.compile(r"local\.(\w+)")


def environment_of(expression: str) -> dict[str, Any]:
    """The keys of an environment_variables expression: a local map, or merge() of local maps (var.* overrides
    only add to keys the locals already name)."""
    match = re.fullmatch(r"\$\{(?:local\.(\w+)|merge\((.*)\))\}", expression)
    assert match, f"environment_variables must be a local or merge() of locals, not {expression}"
    names = [match.group(1)] if match.group(1) else _LOCAL_REF.findall(match.group(2))
    environment: dict[str, Any] = {}
    for name in names:
        value = terraform()["locals"][name]
        yaml_file = re.fullmatch(r'\$\{yamldecode\(file\("\$\{path\.module\}/([\w.-]+)"\)\)\}', str(value))
        if yaml_file:
            environment.update(yaml.safe_load((INFRA / yaml_file.group(1)).read_text()))
        elif isinstance(value, str):
            environment.update(environment_of(value))
        else:
            environment.update(value)
    return environment
