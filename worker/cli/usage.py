"""How the CLI presents itself: `--version`, flags without a type, the roles' variables.

Each role command's help ends with the `ESCALATOR_*` variables that configure it, generated
from the fields of `config/settings.py` (name, default, description): a field is a role's when
its name starts with one of the role's prefixes below, and shared by every role otherwise.
`tests/unit/test_cli_usage.py` checks that every field lands somewhere.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import typer
from pydantic.fields import FieldInfo
from rich.markup import escape
from typer.core import TyperOption

from config.settings import Settings

# A field belongs to a role when its name starts with one of these; otherwise to every role.
ROLE_PREFIXES: dict[str, tuple[str, ...]] = {
    "api": (
        "api_",
        "gateway_",
        "sources",
        "management_token",
        "viewer_token",
        "console_",
        "public_url",
    ),
    "ingest": ("ingest_", "event_max_"),
    "scheduler": ("scheduler_", "reconcile_", "outbox_sweep_", "canary_", "heartbeat_url"),
    "worker": (
        "worker_",
        "delivery_",
        "templates_dir",
        "jira_",
        "github_",
        "zendesk_",
        "writeback_",
        "secrets",
    ),
}
SHARED = "every role"
# Set by `escalator run` for its children, not by people.
INTERNAL = frozenset({"metrics_dir"})


def escalator_version() -> str:
    """The installed package's version (from its metadata)."""
    try:
        return version("escalator")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown (not installed)"


def print_version(value: bool) -> None:
    """The eager `--version` option: print and stop."""
    if value:
        typer.echo(f"escalator {escalator_version()}")
        raise typer.Exit()


def role_of(name: str) -> str:
    """The role a Settings field configures, or SHARED."""
    for role, prefixes in ROLE_PREFIXES.items():
        if name.startswith(prefixes):
            return role
    return SHARED


def variable(name: str, field: FieldInfo) -> str:
    """The environment variable of a field: its alias if it has one, else ESCALATOR_NAME."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"ESCALATOR_{name.upper()}"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None or field.default is None:
        return ""
    value = field.default
    shown = value.name if isinstance(value, Path) else value
    return f" (default {shown})"


def variables(*roles: str) -> list[tuple[str, str]]:
    """(variable, what it does) for the fields of `roles`, in the order of Settings."""
    found = []
    for name, field in Settings.model_fields.items():
        if name in INTERNAL or role_of(name) not in roles:
            continue
        what = ((field.description or "") + _default(field)).strip()
        found.append((variable(name, field), escape(what)))
    return found


def role_epilog(*roles: str) -> str:
    """The end of a role command's help: the variables of its roles, then the shared ones."""
    mine, shared = variables(*roles), variables(SHARED)
    width = max(len(name) for name, _ in (*mine, *shared))
    lines = [f"[bold]Environment[/bold] (or .env) for {', '.join(roles)}:"]
    lines += [f"  {name:<{width}}  {what}".rstrip() for name, what in mine]
    lines.append("[bold]Shared by every role:[/bold]")
    lines += [f"  {name:<{width}}  {what}".rstrip() for name, what in shared]
    return "\b\n" + "\n".join(lines)


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """A flag takes no value: show no type (typer 0.29 shows `<bool>` for every flag)."""
    if self.is_flag:
        return None
    return _typed(self, ctx)


_typed = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
