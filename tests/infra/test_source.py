"""What Cloud Functions gets: defined once, in infra/source_files.json, and read alike by Terraform (source_files.tf)
and infra/deploy.sh; exactly the files the entry points need, and none of the operators' tools, tests or fakes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.infra import facts
from tests.infra.test_tooling import TERRAFORM_ENV, terraform_binary

ROOT = facts.ROOT
# The names a second definition of the source would have to spell out.
PATH_WORDS = re.compile(r"main\.py|requirements\.txt|functions/|__pycache__|\.pyc|__main__|tools/|tests/|fakes")


def code_lines(path: Path, comment: str) -> list[str]:
    """The lines of a file that are not comments."""
    return [line for line in path.read_text().splitlines() if not line.lstrip().startswith(comment)]


def terraform_source_files(repo: Path, work: Path) -> list[str]:
    """local.source_files for the repository at `repo`, evaluated by Terraform itself (no provider is needed): a
    module of infra/source_files.tf, anchored at `repo`, beside a copy of repo's manifest."""
    work.mkdir(parents=True)
    text = (facts.INFRA / "source_files.tf").read_text()
    anchored = text.replace('abspath("${path.module}/..")', json.dumps(str(repo)))
    assert anchored != text, "source_files.tf no longer finds the repository as path.module/.."
    (work / "main.tf").write_text(anchored + '\noutput "files" {\n  value = local.source_files\n}\n')
    shutil.copyfile(repo / "infra" / facts.SOURCE_RULES.name, work / facts.SOURCE_RULES.name)
    for command in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
        done = subprocess.run(
            [terraform_binary(), *command], cwd=work, env=TERRAFORM_ENV, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    output = subprocess.run(
        [terraform_binary(), "output", "-json", "files"], cwd=work, env=TERRAFORM_ENV, capture_output=True, text=True
    )
    files: list[str] = json.loads(output.stdout)
    return files


def deploy_sh_source_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["bash", str(repo / "infra" / "deploy.sh"), "--list-source"], capture_output=True, text=True, check=True
    )
    return listed.stdout.splitlines()


def test_the_manifest_is_the_only_definition_of_the_source() -> None:
    rules = json.loads(facts.SOURCE_RULES.read_text())
    assert set(rules) == {"about", "include", "exclude"}
    for kind in ("include", "exclude"):
        assert rules[kind], kind
        for pattern, why in rules[kind].items():
            assert why.strip(), f"{kind} {pattern}: say why"
    for pattern in rules["include"]:
        assert not re.search(r"[\[\]{}!]", pattern), f"{pattern}: only *, ** and ? mean the same to fileset and glob"

    tf = facts.terraform()
    assert tf["locals"]["source_rules"] == '${jsondecode(file("${path.module}/source_files.json"))}'
    assert "local.source_rules.include" in tf["locals"]["source_files"]
    assert "local.source_rules.exclude" in tf["locals"]["source_files"]
    for path in sorted(facts.INFRA.glob("*.tf")):
        spelled = [line for line in code_lines(path, "#") if PATH_WORDS.search(line)]
        assert not spelled, f"{path.name} names source paths itself: {spelled}"
        if path.name != "source_files.tf":
            assert "fileset(" not in path.read_text(), f"{path.name} lists files: only source_files.tf may"
    archive = tf["data"]["archive_file"]["source"]
    assert [d["source"]["for_each"] for d in archive["dynamic"]] == ["${local.source_files}"]

    script = facts.INFRA / "deploy.sh"
    spelled = [line for line in code_lines(script, "#") if PATH_WORDS.search(line)]
    assert not spelled, f"deploy.sh names source paths itself: {spelled}"
    assert "infra/source_files.json" in script.read_text()
    assert not re.search(r"\bfind\b", "\n".join(code_lines(script, "#"))), "deploy.sh lists files with find"


def expected_source(repo: Path) -> list[str]:
    """The brief, restated independently of the manifest: main.py, requirements.txt and everything under functions/
    except its __main__.py (the CLI's entry, which imports tools/), bytecode and hidden files."""
    found = [name for name in ("main.py", "requirements.txt") if (repo / name).is_file()]
    for directory, subdirectories, files in os.walk(repo / "functions"):
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            relative = (Path(directory) / name).relative_to(repo).as_posix()
            if relative != "functions/__main__.py" and not name.endswith((".pyc", ".pyo")) and name[0] != ".":
                found.append(relative)
    return sorted(found)


def test_terraform_and_the_deploy_script_upload_exactly_what_the_functions_need(tmp_path: Path) -> None:
    listed = deploy_sh_source_files(ROOT)
    assert listed == sorted(listed)
    assert list(facts.deployed_source()) == listed
    assert {"main.py", "requirements.txt", "functions/platform/config.py"} <= set(listed)
    assert {str(e.module.relative_to(ROOT)) for e in facts.entry_points()} <= set(listed)
    assert [f for f in listed if f.endswith(".html")], "the linking pages' templates"
    unwanted = re.compile(r"^(tools|tests|bench|infra)/|fakes|^functions/__main__\.py$|__pycache__|\.py[co]$|/\.")
    assert not [f for f in listed if unwanted.search(f)], listed
    assert listed == expected_source(ROOT)
    assert terraform_source_files(ROOT, tmp_path / "module") == listed, "deploy.sh uploads other files than Terraform"


SYNTHETIC_TREE = {
    "main.py": "",
    "requirements.txt": "",
    "README.md": "",
    "functions/__init__.py": "",
    "functions/__main__.py": "from tools.cli import main\n",
    "functions/feature/__init__.py": "",
    "functions/feature/__main__.py": "",  # only the package's own __main__ is the CLI
    "functions/feature/templates/page.html": "",
    "functions/feature/__pycache__/entry.cpython-311.pyc": "",
    "functions/stray.pyc": "",
    "functions/.editor.swp": "",
    "functions/.hidden/module.py": "",
    "tools/cli.py": "",
    "tests/fakes/memory.py": "",
}


def test_terraform_and_the_deploy_script_follow_the_manifest_alike(tmp_path: Path) -> None:
    """On a tree with every kind of file to leave out, and after editing the manifest: both read it, so neither
    can keep a list of its own."""
    repo = tmp_path / "repo"
    for name, text in SYNTHETIC_TREE.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    (repo / "infra").mkdir()
    for name in ("deploy.sh", facts.SOURCE_RULES.name):
        shutil.copyfile(facts.INFRA / name, repo / "infra" / name)

    wanted = [
        "functions/__init__.py",
        "functions/feature/__init__.py",
        "functions/feature/__main__.py",
        "functions/feature/templates/page.html",
        "main.py",
        "requirements.txt",
    ]
    assert deploy_sh_source_files(repo) == wanted == expected_source(repo)
    rules = json.loads(facts.SOURCE_RULES.read_text())
    rules["include"]["tools/*.py"] = "a test's edit"
    rules["exclude"]["(^|/)templates/"] = "a test's edit"
    (repo / "infra" / facts.SOURCE_RULES.name).write_text(json.dumps(rules))
    edited = sorted([*[f for f in wanted if "templates/" not in f], "tools/cli.py"])
    assert deploy_sh_source_files(repo) == edited

    assert terraform_source_files(repo, tmp_path / "edited") == edited
    (repo / "infra" / facts.SOURCE_RULES.name).write_text(facts.SOURCE_RULES.read_text())
    assert terraform_source_files(repo, tmp_path / "module") == wanted


def test_every_entry_point_imports_from_exactly_the_deployed_files(tmp_path: Path) -> None:
    deployed = tmp_path / "deployed"
    for name in facts.deployed_source():
        (deployed / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, deployed / name)
    targets = [e.name for e in facts.entry_points()]
    # Imports every entry point from the archive's files alone, as Cloud Functions would; the operators' tools and
    # the tests' fakes are not there, so nothing may reach for them.
    probe = (
        "import os, sys, functions_framework\n"
        "for target in sys.argv[1:]:\n"
        "    functions_framework.create_app(target=target, source='main.py')\n"
        "here = os.path.abspath(sys.path[0] or '.')\n"
        "def origin(m): return os.path.abspath(getattr(m, '__file__', None) or here)\n"
        "outside = sorted(n for n, m in sys.modules.items() if n.split('.')[0] == 'functions'\n"
        "                 and not origin(m).startswith(here))\n"
        "assert not outside, outside\n"
        "assert not [n for n in sys.modules if n.split('.')[0] in ('tools', 'tests')]\n"
        "print('ok', len(sys.argv) - 1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["GOOGLE_CLOUD_PROJECT"] = "demo-archive-check"
    result = subprocess.run(
        [sys.executable, "-c", probe, *targets], cwd=deployed, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"ok {len(targets)}"
