"""`escalator policy check|reload`: validate a policy file; make running roles reload theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config.settings import Settings
from worker.constants import POLICY_GENERATION
from worker.policy_loader import check_policy
from worker.redis_conn import connect

policy_app = typer.Typer(help="The policy file: check it, reload it.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _report(path: Path) -> bool:
    policies, problems = check_policy(path)
    for problem in problems:
        err.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
    if policies is None:
        err.print(f"{len(problems)} error(s) in {path}")
        return False
    console.print(
        f"{path}: OK: {len(policies.policies)} policies "
        f"({', '.join(p.name for p in policies.policies)}; default {policies.default}), "
        f"{len(policies.tiers)} tiers, {len(policies.channels)} channels",
        highlight=False,
        soft_wrap=True,
    )
    return True


@policy_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="The policy file to check.")]) -> None:
    """Validate FILE; print every error with its line; exit status 1 on errors."""
    if not _report(file):
        raise typer.Exit(1)


@policy_app.command("reload")
def reload(ctx: typer.Context) -> None:
    """Validate the configured policy file, then ask every running role to reload it."""
    settings: Settings = ctx.obj
    if not _report(settings.policy_file):
        err.print("refused: the running roles keep the policy they have")
        raise typer.Exit(1)
    generation = connect(settings.resolved_redis_url()).incr(POLICY_GENERATION)
    console.print(f"reload requested (generation {generation}); roles reload within a second")
