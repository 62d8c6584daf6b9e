"""The checkouts `overload.py` runs: what a tree holds and how its role processes start.

A tree's roles run with `bench/_overload_site` (the task counter) and the tree itself first on
PYTHONPATH, ahead of the editable install, so a second checkout runs its own code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SITE = Path(__file__).resolve().parent / "_overload_site"

# Run inside the tree under test: what it is and which roles `escalator run` starts.
_PROBE = """
import json, sys
import worker, worker.broker.keys as k
from worker.roles import supervisor
roles = [r if isinstance(r, str) else list(r) for r in getattr(supervisor, "ROLES", ())]
consts = {n: v for n, v in vars(k).items() if n.isupper() and isinstance(v, str)}
print(json.dumps({"worker": worker.__file__, "roles": roles, "constants": consts}))
"""


@dataclass(frozen=True)
class Tree:
    """A checkout to run, as its own role processes see it."""

    path: Path
    worker_file: str
    roles: tuple[tuple[str, ...], ...]  # each: the arguments after `python -m worker.cli.main`
    constants: dict[str, str]
    label: str


def describe(path: Path) -> str:
    """`path @ commit`, and whether its product code has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "worker", "config", "schemas"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(path)
    return f"{path} @ {head}{' + uncommitted changes' if dirty else ''}"


def const(tree: Tree, name: str, default: str) -> str:
    return tree.constants.get(name, default)


def tree_env(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment that runs `tree`'s code (first on PYTHONPATH, before the editable
    install) with the counting sitecustomize before it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SITE), str(tree)])
    env.update(extra or {})
    return env


def probe(path: Path, roles: str | None = None) -> Tree:
    """What `path` holds, asked of a Python process started the way its roles are."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=tree_env(path),
        cwd=path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"cannot load the tree {path}:\n{out.stderr[-3000:]}")
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(info["worker"]).resolve().is_relative_to(path.resolve()):
        raise SystemExit(f"{path}: its roles would import worker from {info['worker']}")
    if roles:
        chosen = [tuple(r.split()) for r in roles.split(",") if r.strip()]
    else:  # what `escalator run` starts, but the HTTP gateway (nothing here calls it)
        chosen = [(r,) if isinstance(r, str) else tuple(r) for r in info["roles"]]
        chosen = [r for r in chosen if r[0] != "api"]
    return Tree(
        path.resolve(),
        info["worker"],
        tuple(chosen),
        info["constants"],
        describe(path.resolve()),
    )
