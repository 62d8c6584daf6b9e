"""A newcomer's first commands (worker/cli/failures.py, usage.py): one line when nothing runs,
no file left behind by a command that only looks, a clean --help, --version, our own words."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from config.settings import Settings
from schemas.policy import PolicyFile
from worker.cli import main as cli
from worker.cli.inspect import issues_table
from worker.cli.usage import ROLE_PREFIXES, SHARED, role_of, variables
from worker.domain.clock import ManualClock
from worker.services.ingest import apply_batch
from worker.services.uow import Units

from .factories import T0, event_json

READ_ONLY = (
    ["issues"],
    ["issues", "--all"],
    ["show", "jira:OPS-1"],
    ["notifications", "list"],
    ["dead", "list"],
    ["status"],
)
NEEDS_REDIS = (["send", "--issue", "OPS-1", "--severity", "P1"], ["dead", "list"], ["reconcile"])


@pytest.fixture
def empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder where Escalator never ran: no ESCALATOR_ variable, the data dir in tmp_path."""
    for name in list(os.environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)
    return tmp_path


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("argv", NEEDS_REDIS, ids=" ".join)
def test_without_redis_one_line_naming_escalator_run(empty: Path, argv: list[str]) -> None:
    """Nothing running: a command that needs Redis says so in one line, exit 2, no traceback."""
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 2, result.output
    line = _one_line(result.output)
    assert "Redis is not reachable" in line and "escalator run" in line
    assert "ESCALATOR_REDIS_URL" in line


def test_redis_url_that_does_not_answer_names_the_variable(
    empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured Redis that does not answer: its URL (no password) and the variable to fix."""
    monkeypatch.setenv("ESCALATOR_REDIS_URL", f"redis://:hunter2@127.0.0.1:{_free_port()}/0")
    result = CliRunner().invoke(cli.app, ["send", "--issue", "OPS-1", "--severity", "P1"])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert "ESCALATOR_REDIS_URL" in line and "hunter2" not in line


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_no_file(empty: Path, argv: list[str]) -> None:
    """A command that only looks, run where Escalator never ran, leaves the folder empty."""
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 2, result.output
    _one_line(result.output)
    assert list(empty.iterdir()) == []


def test_missing_sqlite_file_says_how_to_create_it(empty: Path) -> None:
    """No database file: one line naming the path, `escalator run` and ESCALATOR_DATA_DIR."""
    result = CliRunner().invoke(cli.app, ["issues"])
    line = _one_line(result.output)
    assert str(empty / ".data" / "escalator.db") in line
    assert "escalator run" in line and "ESCALATOR_DATA_DIR" in line


def test_database_without_schema_says_db_upgrade(
    empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file without the tables: one line saying `escalator db upgrade`, exit 2."""
    (empty / "blank.db").touch()
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", f"sqlite:///{empty / 'blank.db'}")
    result = CliRunner().invoke(cli.app, ["notifications", "list"])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert "no Escalator schema" in line and "escalator db upgrade" in line


def test_database_that_does_not_answer(empty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL URL where nothing listens: one line naming ESCALATOR_DATABASE_URL, exit 2."""
    url = f"postgresql://escalator:s3cret@127.0.0.1:{_free_port()}/escalator"
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", url)
    result = CliRunner().invoke(cli.app, ["issues"])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert "not reachable" in line and "ESCALATOR_DATABASE_URL" in line and "s3cret" not in line


def test_debug_lets_the_traceback_through(empty: Path) -> None:
    """--debug: the infrastructure exception itself comes out, not the one line."""
    result = CliRunner().invoke(cli.app, ["--debug", "dead", "list"])
    assert result.exit_code != 0
    assert "ConnectionError" in type(result.exception).__name__


def test_version_from_the_package_metadata(empty: Path) -> None:
    """`escalator --version` prints the installed version and exits 0."""
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"escalator \d+\.\d+\S*\n", result.output)


HELP: tuple[list[str], ...] = (
    [],
    ["issues"],
    ["send"],
    ["run"],
    ["api"],
    ["worker"],
    ["dead", "replay"],
    ["notifications", "retry"],
    ["policy"],
)


@pytest.mark.parametrize("argv", HELP, ids=lambda a: " ".join(a) or "escalator")
def test_help_shows_no_bool_metavar(empty: Path, argv: list[str]) -> None:
    """A flag takes no value: --help never shows it a `<bool>` type."""
    result = CliRunner().invoke(cli.app, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "--help" in result.output


@pytest.mark.parametrize("role", ["api", "ingest", "scheduler", "worker", "run"])
def test_role_help_lists_its_variables(empty: Path, role: str) -> None:
    """Each role command's help names the ESCALATOR_* variables that configure it."""
    result = CliRunner().invoke(cli.app, [role, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    mine = ROLE_PREFIXES.keys() if role == "run" else [role]
    for name, _ in variables(*mine, SHARED):
        assert name in result.output, name


def test_every_setting_belongs_to_a_role_or_to_all() -> None:
    """The role lists are generated from Settings: every field is shown by some role's help."""
    shown = {name for name, _ in variables(*ROLE_PREFIXES, SHARED)}
    for name, field in Settings.model_fields.items():
        if name != "metrics_dir":
            assert (field.validation_alias or f"ESCALATOR_{name.upper()}") in shown
    assert role_of("ingest_batch") == "ingest" and role_of("redis_url") == SHARED


def test_invalid_configuration_in_our_own_words(
    empty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad variable is named as a variable with its problem; no pydantic link, exit 2."""
    monkeypatch.setenv("ESCALATOR_API_PORT", "eighty")
    result = CliRunner().invoke(cli.app, ["issues"])
    assert result.exit_code == 2
    assert "ESCALATOR_API_PORT:" in result.output and "valid integer" in result.output
    assert "pydantic.dev" not in result.output and "Traceback" not in result.output


def test_send_requires_severity_to_open_an_issue(empty: Path) -> None:
    """`send` opens no issue at a severity nobody chose: --severity is required, exit 2."""
    result = CliRunner().invoke(cli.app, ["send", "--issue", "OPS-1"])
    assert result.exit_code == 2
    assert "--severity" in result.output


def test_send_invalid_event_names_the_field(empty: Path) -> None:
    """An invalid value is said as field: problem, without pydantic's documentation link."""
    result = CliRunner().invoke(cli.app, ["send", "--issue", "OPS-1", "--severity", "P9"])
    assert result.exit_code == 2
    assert "severity:" in result.output and "P9" in result.output
    assert "pydantic.dev" not in result.output


def test_send_json_names_the_line(empty: Path) -> None:
    """A bad line of a JSON Lines file is named by its number, with each missing field."""
    good = event_json()
    result = CliRunner().invoke(cli.app, ["send", "--json", "-"], input=f"{good}\n{{}}\n")
    assert result.exit_code == 2
    assert "line 2" in result.output and "occurred_at: required" in result.output
    assert "pydantic.dev" not in result.output


def test_issues_table_fits_80_columns_without_breaking_keys(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile, tmp_path: Path
) -> None:
    """At 80 columns a long key stays on one line; the title is cut instead."""
    long_title = "Checkout fails for every customer paying by card in the EU region " * 2
    raw = event_json(issue_id="OPS-12345", at=T0, title=long_title)
    apply_batch(Units(sessions), [("1-0", raw)], policies, clock)
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'unit.db'}")
    out = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    out.print(issues_table(settings, width=80))
    text = out.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "jira:OPS-12345" in text and "acknowledge escalate" in text
    assert "…" in text and long_title[:60] not in text
