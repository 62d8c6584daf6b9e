"""The import contract: each layer imports only the layers inside it (docs/ARCHITECTURE.md).

Every module of the repository's packages is parsed (imports inside functions included), so a
new module or a lazy import cannot slip past. Inner to outer: errors and the pure domain; the
store; the services (use cases over a unit of work); then the adapters (broker, notify,
writeback, gateway) and the entrypoints (roles, cli), wired by bootstrap.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# worker.<layer> -> the worker layers it may import (its own is always allowed)
INNER = {"services", "store", "domain", "errors"}
ADAPTERS = {"broker", "notify", "writeback", "gateway"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "domain": {"errors"},
    "store": {"domain", "errors"},
    "services": {"store", "domain", "errors"},
    "broker": {"services", "domain", "errors"},
    "notify": {"domain", "errors"},
    "writeback": {"notify", "domain", "errors"},  # a write-back posts as a channel does
    "gateway": INNER | {"broker"},
    "bootstrap": INNER | ADAPTERS,
    "roles": INNER | ADAPTERS | {"bootstrap"},
    "cli": INNER | ADAPTERS | {"bootstrap", "roles"},
}
# Libraries a layer must not load: the domain is pure, the services know no Celery or Redis.
FORBIDDEN: dict[str, set[str]] = {
    "domain": {"redis", "sqlalchemy", "celery", "kombu", "fastapi", "httpx", "apprise"},
    "services": {"redis", "celery", "kombu", "fastapi"},
    "store": {"redis", "celery", "kombu", "fastapi", "httpx"},
}
# Named modules allowed past their layer's rule, each for a reason said here. The operations
# snapshot is the one read model spanning Redis and the database (heartbeats, stream lag, the
# deadline index, the canary beside outbox counts): a contract other modules import from
# worker.services.operations, reading through the broker's own queries, writing nothing.
EXCEPTIONS: dict[str, set[str]] = {
    "worker.services.operations": {"broker", "redis"},
}


def layer_of(module: str) -> str | None:
    """`worker.services.ingest` -> `services`; None outside worker."""
    parts = module.split(".")
    if parts[0] != "worker" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def modules() -> list[Path]:
    return sorted(
        p
        for package in ("worker", "schemas", "config")
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts
    )


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, absolute, wherever in the file the import is."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def violations() -> list[str]:
    found = []
    for path in modules():
        name = module_name(path)
        own = layer_of(name) if name.startswith("worker.") else name.split(".")[0]
        allowed_here = EXCEPTIONS.get(name, set())
        for imported in imports_of(path):
            top = imported.split(".")[0]
            if top in allowed_here or layer_of(imported) in allowed_here:
                continue
            if not name.startswith("worker."):  # schemas and config: contracts, no worker
                if top == "worker":
                    found.append(f"{name} imports {imported}")
                continue
            if own in FORBIDDEN and top in FORBIDDEN[own]:
                found.append(f"{name} ({own}) loads {top}")
            target = layer_of(imported)
            if target is None or target == own or not (ROOT / "worker" / target).exists():
                if target is None or target == own:
                    continue
                if not (ROOT / "worker" / f"{target}.py").exists():
                    continue  # `from worker import x`: x is checked as worker.x
            if own not in ALLOWED:
                found.append(f"{name}: layer {own!r} has no entry in ALLOWED")
            elif target not in ALLOWED[own]:
                found.append(f"{name} ({own}) imports {imported} ({target})")
    return sorted(set(found))


def test_every_worker_module_belongs_to_a_known_layer() -> None:
    """A new top-level module or package under worker/ must be given its place here."""
    layers = {layer_of(module_name(p)) for p in modules() if module_name(p).startswith("worker.")}
    assert layers - {"__init__"} <= set(ALLOWED)


def test_imports_point_inward() -> None:
    """No module imports a layer outside its own, nor a library its layer must not load."""
    assert violations() == []


@pytest.mark.parametrize("layer", ["domain", "store", "services"])
def test_the_contract_sees_the_layer(layer: str) -> None:
    """The walk really reads the layer's files (an empty walk would pass anything)."""
    assert any(module_name(p).startswith(f"worker.{layer}.") for p in modules())


def test_every_exception_names_a_module() -> None:
    """An exception to the rule names a module that exists (a stale one would excuse nothing)."""
    names = {module_name(p) for p in modules()}
    assert set(EXCEPTIONS) <= names
