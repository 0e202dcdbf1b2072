"""The architecture trees match the code: docs/architecture.md's lists no path that does not exist and every module
under functions/; the README's Architecture section (its rooms) lists no path that does not exist and every package
directly under functions/.

The tree is the ```text block that follows the page's comment naming this file. Its lines are a path (indented two
spaces a folder level; a folder ends with `/`) and what it is; a line of bare file names lists files of the folder
above it; a package's `__init__.py` is described on its folder's line, so a listed folder counts as listing it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"  # the README's Architecture section links to it
MARKER = "tests/unit/test_readme_architecture.py"
INDENT = 2
FILE_NAME = re.compile(r"[\w-]+\.\w+")
# The comment naming this test (no `-->` inside it), then at once the fenced block.
TREE = re.compile(r"<!--(?:(?!-->).)*" + re.escape(MARKER) + r"(?:(?!-->).)*-->\s*```text\n(.*?)\n```", re.DOTALL)


def tree_block(readme: str) -> str:
    """The ```text block right after the comment that names this test."""
    found = TREE.search(readme)
    assert found is not None, f"no ```text block right after a comment naming {MARKER}"
    return found.group(1)


def listed_paths(block: str) -> list[str]:
    """Every path the tree names, relative to the repository root; folders end with `/`."""
    paths: list[str] = []
    folders: list[str] = []  # the folder open at each depth
    for number, line in enumerate(block.splitlines(), start=1):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % INDENT == 0, f"tree line {number}: indent {indent} is not a multiple of {INDENT}"
        depth = indent // INDENT
        assert depth <= len(folders), f"tree line {number}: indented deeper than the folder above it"
        del folders[depth:]
        words = line.split()
        if len(words) > 1 and all(FILE_NAME.fullmatch(word) for word in words):
            # A list of file names: all in the folder above, which stays open.
            paths += ["".join(folders) + word for word in words]
            continue
        path = "".join(folders) + words[0]
        paths.append(path)
        if path.endswith("/"):
            folders.append(words[0])
    return paths


def modules_under(root: Path, package: str = "functions") -> set[str]:
    """Every module of the package, as a repository-relative path."""
    return {
        path.relative_to(root).as_posix() for path in (root / package).rglob("*.py") if "__pycache__" not in path.parts
    }


def tree_problems(listed: list[str], root: Path, package: str = "functions") -> list[str]:
    """What the tree gets wrong about the tree under root: paths that do not exist, modules it misses."""
    problems = [f"listed but absent: {path}" for path in listed if not (root / path).exists()]
    problems += [f"listed twice: {path}" for path, times in sorted(Counter(listed).items()) if times > 1]
    covered = set(listed) | {folder + "__init__.py" for folder in listed if folder.endswith("/")}
    problems += [f"not listed: {module}" for module in sorted(modules_under(root, package) - covered)]
    return problems


def room_problems(listed: list[str], root: Path, package: str = "functions") -> list[str]:
    """What the rooms get wrong: paths that do not exist, the package's subpackages (its rooms) they miss."""
    problems = [f"listed but absent: {path}" for path in listed if not (root / path).exists()]
    problems += [f"listed twice: {path}" for path, times in sorted(Counter(listed).items()) if times > 1]
    packages = {init.parent.relative_to(root).as_posix() + "/" for init in (root / package).glob("*/__init__.py")}
    problems += [f"not listed: {folder}" for folder in sorted(packages - set(listed))]
    return problems


def test_the_architecture_tree_matches_the_code() -> None:
    listed = listed_paths(tree_block(ARCHITECTURE.read_text()))
    assert "functions/core/" in listed, "the tree was not read"
    assert "functions/fulfillment/entry.py" in listed, "the tree was not read"
    assert tree_problems(listed, ROOT) == []


def test_the_readme_rooms_match_the_code() -> None:
    listed = listed_paths(tree_block(README.read_text()))
    assert "functions/reporting/" in listed, "the rooms were not read"
    assert room_problems(listed, ROOT) == []


# The checker itself fails where it should (a checker that cannot fail proves nothing)

SAMPLE = """\
<!-- tree checked by tests/unit/test_readme_architecture.py -->
```text
main.py             entry points
functions/          the package
  alpha/            a feature
    entry.py        its function
    a.py b.py
  beta/             another
```
"""


def write(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")


def test_the_reading_follows_folders_and_file_lists() -> None:
    assert listed_paths(tree_block(SAMPLE)) == [
        "main.py",
        "functions/",
        "functions/alpha/",
        "functions/alpha/entry.py",
        "functions/alpha/a.py",
        "functions/alpha/b.py",
        "functions/beta/",
    ]


def test_a_tree_that_matches_has_no_problems(tmp_path: Path) -> None:
    write(tmp_path, ["main.py", "functions/__init__.py", "functions/alpha/__init__.py", "functions/alpha/entry.py"])
    write(tmp_path, ["functions/alpha/a.py", "functions/alpha/b.py", "functions/beta/__init__.py"])
    assert tree_problems(listed_paths(tree_block(SAMPLE)), tmp_path) == []


def test_a_missing_module_and_an_absent_one_are_both_found(tmp_path: Path) -> None:
    write(tmp_path, ["main.py", "functions/__init__.py", "functions/alpha/__init__.py", "functions/alpha/entry.py"])
    write(tmp_path, ["functions/alpha/a.py", "functions/beta/__init__.py", "functions/beta/new.py"])
    assert tree_problems(listed_paths(tree_block(SAMPLE)), tmp_path) == [
        "listed but absent: functions/alpha/b.py",
        "not listed: functions/beta/new.py",
    ]


def test_rooms_miss_a_new_package_and_name_an_absent_one(tmp_path: Path) -> None:
    write(tmp_path, ["main.py", "functions/__init__.py", "functions/alpha/__init__.py", "functions/gamma/__init__.py"])
    assert room_problems(listed_paths(tree_block(SAMPLE)), tmp_path) == [
        "listed but absent: functions/alpha/entry.py",
        "listed but absent: functions/alpha/a.py",
        "listed but absent: functions/alpha/b.py",
        "listed but absent: functions/beta/",
        "not listed: functions/gamma/",
    ]
