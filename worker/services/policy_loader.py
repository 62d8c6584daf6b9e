"""Reading the policy file, with errors that name the file, the line and the field."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from schemas.policy import PolicyFile
from worker.domain.oncall import Gap, coverage_gaps
from worker.domain.wording import gap_text
from worker.errors import PolicyError

log = structlog.get_logger("escalator.policy")
GAP_WINDOW_DAYS = 14  # how far ahead `policy check` and the roles look for on-call gaps


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, where it is and what it is."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}"


class PolicyFileError(PolicyError):
    """The policy file is invalid; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _line(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest ancestor."""
    if node is None:
        return None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is not None:
                node = child
            # else: a pydantic-only step (a union's tag): stay on this node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            break
    return int(node.start_mark.line) + 1


def check_policy(path: Path) -> tuple[PolicyFile | None, list[Problem]]:
    """Parse and validate; every problem found, with its line where the file has one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(path, None, "(file)", f"cannot read it: {exc.strerror}")]
    return check_policy_text(text, path)


def check_policy_text(text: str, path: Path) -> tuple[PolicyFile | None, list[Problem]]:
    """`check_policy` of a file's text (an upload, a request body); `path` names it."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [Problem(path, line, "(syntax)", f"not valid YAML: {exc}")]
    try:
        return PolicyFile.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors()
        problems = [
            Problem(
                path,
                _line(root, err["loc"]),
                ".".join(str(p) for p in err["loc"]) or "(top level)",
                err["msg"].removeprefix("Value error, "),
            )
            for err in errors
            if not _echo(err, errors)
        ]
        return None, problems


def _echo(err: Any, errors: list[Any]) -> bool:
    """A list reported too short only because an item inside it failed: not a problem of its
    own (pydantic drops the bad item, then counts)."""
    loc = tuple(err["loc"])
    return err["type"] == "too_short" and any(
        tuple(other["loc"])[: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
    )


def load_policy(path: Path) -> PolicyFile:
    """Parse and validate a policy file; raise PolicyFileError listing every problem."""
    policies, problems = check_policy(path)
    if policies is None:
        raise PolicyFileError(problems)
    return policies


def warn_gaps(policies: PolicyFile, path: Path, now: datetime) -> list[Gap]:
    """Log one warning per tier gap in the next 14 days (`policy.coverage_gap`); the gaps."""
    gaps = coverage_gaps(policies, now, GAP_WINDOW_DAYS)
    for gap in gaps:
        log.warning(
            "policy.coverage_gap",
            file=str(path),
            tier=gap.tier,
            reason=gap.reason,
            start=gap.start.isoformat() if gap.start else None,
            end=gap.end.isoformat() if gap.end else None,
            text=gap_text(gap),
        )
    return gaps


class PolicySource:
    """The policy file in force, read again only when it changed (mtime and size); a file that
    no longer validates leaves the last good copy in force, as running roles do. Called by the
    console and the metrics collector on every page and scrape."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._policies: PolicyFile | None = None
        self.error: str | None = None  # why the file on disk is not the one in force

    def _mtime(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> PolicyFile | None:
        """The policy in force (None if it never loaded)."""
        stamp = self._mtime()
        with self._lock:
            if stamp is not None and stamp == self._stamp:
                return self._policies
            try:
                self._policies = load_policy(self.path)
                self.error = None
            except (PolicyError, OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("policy.unreadable", path=str(self.path), error=self.error)
            self._stamp = stamp
            return self._policies

    __call__ = current
