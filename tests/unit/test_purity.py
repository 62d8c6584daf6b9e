"""The domain core is pure: importing it loads no infrastructure library (STYLE.md rule 1), and
no module of `worker.domain` reaches into the rest of `worker` (imports point inward)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import worker.domain

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "worker" / "domain"
# structlog too: the domain logs nothing, its callers do.
FORBIDDEN = ("redis", "sqlalchemy", "celery", "kombu", "fastapi", "httpx", "structlog")
# The one exception tree (STYLE.md rule 5) is the only part of `worker` outside the domain that
# the domain may import: every layer raises from it, and it imports nothing itself.
ALLOWED_OUTSIDE = frozenset({"worker.errors"})
PROBE = """
import importlib, json, pkgutil, sys
import worker.domain
names = sorted(
    m.name for m in pkgutil.walk_packages(worker.domain.__path__, "worker.domain.")
)
for name in names:
    importlib.import_module(name)
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def domain_files() -> list[Path]:
    """Every module file of the domain package, found on disk."""
    return sorted(DOMAIN.rglob("*.py"))


def module_name(path: Path) -> str:
    """`worker/domain/sla.py` -> `worker.domain.sla` (a package's `__init__` is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.fixture(scope="module")
def probe() -> dict[str, list[str]]:
    """What a fresh interpreter imported (every domain module) and the top-level modules it
    then holds (one subprocess for the whole file)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def test_probe_imported_every_domain_module(probe: dict[str, list[str]]) -> None:
    """The probe walked the whole package: every module file on disk was imported, and the
    schemas it builds on were loaded, so an empty answer cannot pass."""
    on_disk = {module_name(p) for p in domain_files()} - {"worker.domain"}
    assert on_disk and on_disk <= set(probe["imported"])
    assert {"worker", "schemas", "pydantic"} <= set(probe["loaded"])


@pytest.mark.parametrize("library", FORBIDDEN)
def test_domain_does_not_load(probe: dict[str, list[str]], library: str) -> None:
    """Importing every module of worker.domain loads none of the infrastructure libraries."""
    assert library not in probe["loaded"]


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`; those
    inside functions too, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, name))
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    """The imports of one file of the repository."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    return imports_in(path.read_text(encoding="utf-8"), package)


def outward(name: str) -> bool:
    """Whether an import of `name` leaves the domain for the rest of `worker`."""
    inside = name == "worker.domain" or name.startswith("worker.domain.")
    return (name == "worker" or name.startswith("worker.")) and not inside


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: p.name)
def test_domain_imports_point_inward(path: Path) -> None:
    """No worker.domain module imports from worker.* outside worker.domain (but the error tree)."""
    leaks = [
        f"{path.name}:{line} imports {name}"
        for line, name in imports_of(path)
        if outward(name) and name not in ALLOWED_OUTSIDE
    ]
    assert not leaks


def test_the_allowed_error_tree_imports_nothing_from_worker() -> None:
    """worker.errors, the one exception the rule allows, is a leaf: it imports no worker module."""
    errors = ROOT / "worker" / "errors.py"
    assert not [name for _, name in imports_of(errors) if name.startswith("worker")]


def test_the_import_check_sees_an_outward_import() -> None:
    """The check would catch a leak, absolute or relative, in a function too, and lets the
    domain's own imports and the error tree through."""
    source = (
        "from worker.store import models\n"
        "from .. import bootstrap\n"
        "from . import sla\n"
        "from .moot import moot\n"
        "from worker.errors import UnknownIssue\n"
        "def f():\n    import worker.services.outbox\n"
    )
    names = [name for _, name in imports_in(source, "worker.domain")]
    assert names == [
        "worker.store",
        "worker",
        "worker.domain",
        "worker.domain.moot",
        "worker.errors",
        "worker.services.outbox",
    ]
    leaks = [n for n in names if outward(n) and n not in ALLOWED_OUTSIDE]
    assert leaks == ["worker.store", "worker", "worker.services.outbox"]


def test_public_surface_exports_what_it_lists() -> None:
    """Every name in worker.domain.__all__ is there, so `from worker.domain import X` works."""
    missing = [name for name in worker.domain.__all__ if not hasattr(worker.domain, name)]
    assert not missing
