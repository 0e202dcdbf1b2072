"""House rules that a test can check: the domain stays free of transports and SDKs; cold starts stay light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_DOMAIN = ("flask", "werkzeug", "functions_framework", "google", "googleapiclient", "grpc", "cloudevents")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_domain_imports_neither_flask_nor_a_google_sdk() -> None:
    offenders = []
    for path in sorted((ROOT / "functions" / "domain").rglob("*.py")):
        for name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN_IN_DOMAIN:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_importing_main_loads_neither_the_homegraph_client_nor_pubsub() -> None:
    probe = (
        "import sys, json; import main; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('googleapiclient', 'google.cloud.pubsub')))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_main_only_names_entry_points() -> None:
    tree = ast.parse((ROOT / "main.py").read_text())
    for node in tree.body:
        allowed = (ast.ImportFrom, ast.Import, ast.Expr, ast.Assign)
        assert isinstance(node, allowed), f"main.py should only import entry points, found {ast.dump(node)[:80]}"
