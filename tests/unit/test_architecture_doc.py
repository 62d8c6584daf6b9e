"""docs/ARCHITECTURE.md matches the code: its package tree is the tree on disk, every path and
name it cites exists, and its table of layers is the import contract of test_layers.py."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from .test_layers import ALLOWED, FORBIDDEN

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
INDENT = 2  # spaces per level of the tree
SKIPPED = {"migrations", "__pycache__"}  # not drawn module by module
NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?")
PATH = re.compile(r"(?<![\w/.])(?:\.\./)?((?:[A-Za-z_][\w-]*/)+[\w-]+\.(?:py|lua))\b")
CITED = re.compile(r"`((?:[\w-]+/)+[\w-]+\.py):\s+([^`]+)`")  # `worker/x.py: name, Class.name`
DOTTED = re.compile(r"`(worker(?:\.\w+)+)`")  # `worker.services.uow.Effects`


@cache
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def tree_lines() -> list[str]:
    """The fenced block of the package tree: the one with a `worker/` line at its left edge."""
    for block in re.findall(r"^```\n(.*?)^```", text(), flags=re.MULTILINE | re.DOTALL):
        lines = str(block).splitlines()
        if any(line.split(" ", 1)[0] == "worker/" for line in lines):
            return lines
    raise AssertionError("docs/ARCHITECTURE.md has no package tree with a `worker/` line")


def listed() -> set[str]:
    """Every path the tree names, from the repository root; a directory ends with `/`."""
    paths: set[str] = set()
    parents: list[str] = []
    for line in tree_lines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        depth, odd = divmod(indent, INDENT)
        name = line.split()[0]
        assert not odd and depth <= len(parents), f"misplaced in the tree: {line!r}"
        assert re.fullmatch(r"[\w.-]+/?", name), f"not a file or folder name: {line!r}"
        del parents[depth:]
        path = "".join(parents) + name
        assert path not in paths, f"listed twice: {path}"
        paths.add(path)
        if name.endswith("/"):
            parents.append(name)
    return paths


def skipped(path: str) -> bool:
    return bool(SKIPPED & set(path.rstrip("/").split("/")))


def modules_listed(top: str) -> set[str]:
    """The modules and packages the tree lists under `top` (other files left out)."""
    return {
        p
        for p in listed()
        if p.startswith(f"{top}/") and p != f"{top}/" and not skipped(p)
        if p.endswith((".py", "/"))
    }


def modules_on_disk(top: str) -> set[str]:
    """The modules and packages under `top`, without `__init__.py` files and migrations."""
    found: set[str] = set()
    for path in (ROOT / top).rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if skipped(rel):
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            found.add(f"{rel}/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            found.add(rel)
    return found


def module_file(dotted: str) -> Path | None:
    """The file of a module or package named `a.b.c`, or None."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defined(body: list[ast.stmt]) -> set[str]:
    """The names a module or class body binds: defs, classes, assignments, imports."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def has_name(path: Path, name: str) -> bool:
    """Whether the module at `path` defines `name`, or `Class.attribute`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    owner, _, attribute = name.partition(".")
    if not attribute:
        return owner in defined(tree.body)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner]
    return any(attribute in defined(c.body) for c in classes)


def test_the_tree_block_is_found_and_parsed() -> None:
    """The tree is read at all: it names worker/ and a module of each layer (an empty parse
    would make the next test pass on nothing)."""
    names = listed()
    assert "worker/" in names
    assert {"worker/domain/firing.py", "worker/services/uow.py", "worker/broker/keys.py"} <= names


@pytest.mark.parametrize("top", ["worker", "schemas", "config"])
def test_the_tree_lists_every_module_on_disk_and_no_other(top: str) -> None:
    """The modules and packages the tree lists are exactly those on disk (migrations and
    `__init__.py` files aside): a module added, moved or removed must be redrawn."""
    on_disk, drawn = modules_on_disk(top), modules_listed(top)
    missing, gone = sorted(on_disk - drawn), sorted(drawn - on_disk)
    assert not missing, f"on disk, missing from docs/ARCHITECTURE.md: {missing}"
    assert not gone, f"in docs/ARCHITECTURE.md, not on disk: {gone}"


def test_every_entry_of_the_tree_exists() -> None:
    """Every file and folder the tree names (Lua scripts, YAML, migrations too) is there."""
    missing = sorted(p for p in listed() if not (ROOT / p).exists())
    assert not missing, f"in the tree, not on disk: {missing}"


def test_every_path_the_doc_mentions_exists() -> None:
    """Each `worker/...py` (or `.lua`) path in the text and the drawings exists, from the
    repository root or, in the drawings, from worker/."""
    mentioned = set(PATH.findall(text()))
    assert "worker/services/uow.py" in mentioned
    missing = sorted(
        p for p in mentioned if not (ROOT / p).is_file() and not (ROOT / "worker" / p).is_file()
    )
    assert not missing, f"mentioned, not on disk: {missing}"


def test_every_name_cited_with_its_module_exists() -> None:
    """`path.py: name, Class.method` citations name what that module defines."""
    citations = CITED.findall(text())
    assert len(citations) > 20  # the pattern really matches the doc's citations
    wrong = []
    for path, names in citations:
        file = ROOT / path
        for raw in names.split(","):
            name = raw.strip().removesuffix("()")
            if not NAME.fullmatch(name) or not file.is_file() or not has_name(file, name):
                wrong.append(f"{path}: {name}")
    assert not wrong, f"cited, not defined there: {wrong}"


def test_every_dotted_worker_name_resolves() -> None:
    """`worker.a.b` and `worker.a.b.Name` in the text name a real module and what it defines."""
    wrong = []
    for dotted in set(DOTTED.findall(text())):
        parts = dotted.split(".")
        for cut in range(len(parts), 1, -1):
            file = module_file(".".join(parts[:cut]))
            if file is not None:
                rest = ".".join(parts[cut:])
                if rest and (not NAME.fullmatch(rest) or not has_name(file, rest)):
                    wrong.append(dotted)
                break
        else:
            wrong.append(dotted)
    assert not wrong, f"names that do not resolve: {wrong}"


def layer_table() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The doc's table of layers: what each may import, and what it may not load."""
    section = text().split("## Layers and the import rule", 1)[1].split("\n## ", 1)[0]
    allowed: dict[str, set[str]] = {}
    forbidden: dict[str, set[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        layer, imports, loads = (cell.strip() for cell in line.strip().strip("|").split("|"))
        [name] = re.findall(r"`(\w+)`", layer)
        allowed[name] = set(re.findall(r"`(\w+)`", imports))
        if banned := set(re.findall(r"`(\w+)`", loads)):
            forbidden[name] = banned
    return allowed, forbidden


def test_the_layer_table_is_the_import_contract() -> None:
    """The layers, what each may import and which libraries it may not load are, in the doc,
    what tests/unit/test_layers.py enforces."""
    allowed, forbidden = layer_table()
    assert allowed == ALLOWED
    assert forbidden == FORBIDDEN
