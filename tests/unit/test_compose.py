"""docker-compose.yml: valid Compose, and every service runs a command the CLI really has.

No Docker engine runs where these tests do, so the file is checked against the Compose
Specification's JSON Schema and against the Typer app itself.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fakeredis
import jsonschema
import pytest
import typer
import yaml
from typer.testing import CliRunner

import worker.cli.main as cli
from config.settings import Settings
from worker.broker import canary
from worker.broker.celery_app import PREFETCH
from worker.broker.heartbeats import beat
from worker.broker.keys import ESCALATION_QUEUE, GROUP, OUTBOX_QUEUE, STREAM
from worker.roles import probe
from worker.roles.supervisor import ROLES as SUPERVISED
from worker.services.policy_loader import load_policy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
# The Compose Specification JSON Schema (draft-07), compose-spec/compose-spec
# `schema/compose-spec.json` at commit 170098ba07d9 (2026-06-23), Apache License 2.0: a pinned
# copy, so that the check runs wherever the repository is cloned.
SPEC = ROOT / "tests" / "fixtures" / "compose-spec.json"

# Each long-running app service and the role command it runs.
COMMANDS = {
    "api": ["api"],
    "ingest": ["ingest"],
    "scheduler": ["scheduler"],
    "worker-escalations": ["worker", "--queue", ESCALATION_QUEUE],
    "worker-outbox": ["worker", "--queue", OUTBOX_QUEUE],
}
ROLES = tuple(COMMANDS)
APP_SERVICES = (*ROLES, "migrate")  # everything built from the repo's Dockerfile
LONG_RUNNING = (*ROLES, "redis", "postgres")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (YAML anchors and merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services section."""
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture
def quiet_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the CLI callback from reconfiguring this process's logging while --help runs."""
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)
    for name in list(os.environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)
    yield


def entrypoint() -> list[str]:
    """The Dockerfile's ENTRYPOINT, which must be exec form."""
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "Dockerfile has no exec-form ENTRYPOINT"
    parsed: list[str] = yaml.safe_load(match.group(1))
    return parsed


def resolve(group: Any, words: list[str]) -> Any | None:
    """Walk the CLI's command tree along `words`; None if a word is not a command there.

    Typer ships its own copy of Click, so groups are recognised by their `commands` mapping.
    """
    command = group
    for word in words:
        subcommands = getattr(command, "commands", None)
        if not isinstance(subcommands, dict) or word not in subcommands:
            return None
        command = subcommands[word]
    return command


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    """docker-compose.yml validates against the Compose Specification JSON Schema (draft 7)."""
    schema = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(
        f"{'.'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors
    )


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    """The stack has redis, postgres, migrate and the five role services, nothing unexpected."""
    assert set(services) == {"redis", "postgres", *APP_SERVICES}


def test_app_services_build_the_repo_image_whose_entrypoint_is_the_cli(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every app service is built from ./Dockerfile, whose exec-form ENTRYPOINT is `escalator`."""
    assert entrypoint() == ["escalator"]
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert context == ".", name
        if isinstance(build, dict):
            assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_command_is_a_real_cli_command(
    name: str, services: dict[str, dict[str, Any]], quiet_cli: None
) -> None:
    """The service's command names a command of the Typer app whose options accept the given
    values, and `--help` on it exits 0."""
    command = services[name]["command"]
    assert isinstance(command, list) and command, f"{name}: command must be an exec-form list"
    group = typer.main.get_command(cli.app)
    assert command[0] in getattr(group, "commands", {}), (
        f"{name}: `escalator {command[0]}` does not exist"
    )
    words = list(itertools.takewhile(lambda w: not w.startswith("-"), command))
    target = resolve(group, words)
    assert target is not None, f"{name}: `escalator {' '.join(words)}` does not exist"
    target.make_context(words[-1], command[len(words) :])  # parses and checks every option
    result = CliRunner().invoke(cli.app, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_roles_run_their_own_role_command(services: dict[str, dict[str, Any]]) -> None:
    """Each role service runs exactly its role command; migrate runs `db upgrade`."""
    for role, command in COMMANDS.items():
        assert services[role]["command"] == command, role
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_compose_runs_what_escalator_run_runs(services: dict[str, dict[str, Any]]) -> None:
    """The role services run the same role commands as `escalator run`'s supervisor."""
    assert sorted(tuple(services[r]["command"]) for r in ROLES) == sorted(SUPERVISED)


def test_each_queue_has_a_worker_of_its_own() -> None:
    """Escalations and deliveries are consumed by different workers; escalations prefetch 1."""
    queues = [c[c.index("--queue") + 1] for c in COMMANDS.values() if "--queue" in c]
    assert sorted(queues) == sorted([ESCALATION_QUEUE, OUTBOX_QUEUE])
    assert PREFETCH[ESCALATION_QUEUE] == 1


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_unless_stopped(
    name: str, services: dict[str, dict[str, Any]]
) -> None:
    """Every long-running service comes back after it exits, unless an operator stopped it."""
    assert services[name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("queue", [ESCALATION_QUEUE, OUTBOX_QUEUE])
def test_worker_healthcheck_pings_its_own_node(
    queue: str, services: dict[str, dict[str, Any]]
) -> None:
    """A worker's health check pings the Celery node that its command names (`QUEUE@host`)."""
    code = services[f"worker-{queue}"]["healthcheck"]["test"][3]
    assert f"'{queue}@{{socket.gethostname()}}'" in code


def test_redis_keeps_what_it_accepts(services: dict[str, dict[str, Any]]) -> None:
    """Redis runs with AOF (fsync every second) and never evicts keys, and keeps a volume."""
    command = services["redis"]["command"]
    text = " ".join(command) if isinstance(command, list) else command
    assert re.search(r"--appendonly\s+yes\b", text)
    assert re.search(r"--appendfsync\s+everysec\b", text)
    assert re.search(r"--maxmemory-policy\s+noeviction\b", text)
    assert any(str(v).endswith(":/data") for v in services["redis"]["volumes"])


def test_scheduler_runs_two_copies(services: dict[str, dict[str, Any]]) -> None:
    """Two schedulers run at once (their claims are atomic)."""
    assert services["scheduler"]["deploy"]["replicas"] == 2


@pytest.mark.parametrize("name", ROLES)
def test_role_has_a_healthcheck(name: str, services: dict[str, dict[str, Any]]) -> None:
    """Every role has an enabled health check whose Python one-liner at least compiles."""
    check = services[name].get("healthcheck")
    assert check and not check.get("disable"), f"{name} has no health check"
    test = check["test"]
    assert isinstance(test, list) and test[0] == "CMD", name
    if test[1:3] == ["python", "-c"]:
        compile(test[3], f"<{name} healthcheck>", "exec")


def test_api_healthcheck_asks_readyz_on_the_published_port(
    services: dict[str, dict[str, Any]],
) -> None:
    """The API binds 0.0.0.0:8080, publishes 8080, and its health check asks /readyz there
    (Redis, the database and its migrations), not /healthz (alive only)."""
    api = services["api"]
    assert api["environment"]["ESCALATOR_API_HOST"] == "0.0.0.0"
    assert Settings.model_fields["api_port"].default == 8080
    assert any(str(p).startswith("8080:8080") for p in api["ports"])
    assert "http://127.0.0.1:8080/readyz" in " ".join(api["healthcheck"]["test"])


def test_scheduler_healthcheck_runs_the_probe_for_real(
    services: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The scheduler's check is `python -m worker.roles.probe scheduler --engine`; run here on
    a fake Redis it fails without this host's heartbeat, then without a canary, and passes with
    both."""
    test = services["scheduler"]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "worker.roles.probe"]
    server = fakeredis.FakeServer()

    @contextmanager
    def fake(_settings: Settings) -> Iterator[fakeredis.FakeRedis]:
        yield fakeredis.FakeRedis(server=server, decode_responses=True)

    monkeypatch.setattr(probe, "redis_client", fake)
    for key in [k for k in os.environ if k.startswith("ESCALATOR_")]:
        monkeypatch.delenv(key)
    redis = fakeredis.FakeRedis(server=server, decode_responses=True)
    assert probe.main(test[4:]) == 1
    beat(redis, "scheduler", f"{socket.gethostname()}:1", started=time.time())
    assert probe.main(test[4:]) == 1
    assert "no canary fired yet" in capsys.readouterr().out
    now = time.time()
    canary.record(redis, [canary.canary_id(now)], now)
    assert probe.main(test[4:]) == 0


@pytest.mark.parametrize("name", [r for r in ROLES if r != "api"])
def test_each_role_serves_metrics_on_9100(name: str, services: dict[str, dict[str, Any]]) -> None:
    """Every role but the api (which serves /metrics on 8080) sets its metrics port to 9100 and
    exposes it to the compose network."""
    service = services[name]
    assert int(service["environment"]["ESCALATOR_METRICS_PORT"]) == 9100
    assert "9100" in [str(p) for p in service["expose"]]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_reads_the_env_file(
    name: str, services: dict[str, dict[str, Any]]
) -> None:
    """.env reaches every app service (the workers get ESCALATOR_SECRETS, the public URL and
    the write-back credentials from it); a missing .env is not an error by itself."""
    env_files = services[name]["env_file"]
    assert {"path": "./.env", "required": False} in env_files


def test_no_database_password_is_written_in_the_file(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """PostgreSQL's password comes from ${POSTGRES_PASSWORD:?...}, required, and the database
    URL of the roles is built from the same variable."""
    required = re.compile(r"^\$\{POSTGRES_PASSWORD:\?[^}]+\}$")
    assert required.match(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    for name in APP_SERVICES:
        url = services[name]["environment"]["ESCALATOR_DATABASE_URL"]
        assert "escalator:${POSTGRES_PASSWORD:?" in url, name
    assert "escalator:escalator@" not in COMPOSE.read_text()


def test_env_example_documents_real_settings() -> None:
    """.env.example names only real settings (and POSTGRES_PASSWORD), requires what compose
    requires, and shows the variables the workers need."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    fields = {f"ESCALATOR_{field.upper()}" for field in Settings.model_fields}
    assert named - fields == {"POSTGRES_PASSWORD"}
    for required in ("POSTGRES_PASSWORD", "ESCALATOR_API_TOKEN"):
        assert re.search(rf"^{required}=", text, flags=re.MULTILINE), required
    for worker_needs in (
        "ESCALATOR_SECRETS",
        "ESCALATOR_PUBLIC_URL",
        "ESCALATOR_JIRA_TOKEN",
        "ESCALATOR_GITHUB_TOKEN",
        "ESCALATOR_ZENDESK_TOKEN",
        "ESCALATOR_WRITEBACK_WEBHOOK_SECRET",
        "ESCALATOR_HEARTBEAT_URL",
    ):
        assert worker_needs in named, worker_needs


def test_ingest_healthcheck_watches_the_real_stream_and_group(
    services: dict[str, dict[str, Any]],
) -> None:
    """The ingest health check reads the consumer group Escalator really uses."""
    code = services["ingest"]["healthcheck"]["test"][3]
    assert repr(STREAM) in code and repr(GROUP) in code


@pytest.mark.parametrize("name", ROLES)
def test_role_waits_for_its_dependencies(name: str, services: dict[str, dict[str, Any]]) -> None:
    """Every role starts after Redis and PostgreSQL are healthy and migrate has completed."""
    depends = services[name]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_waits_for_postgres(services: dict[str, dict[str, Any]]) -> None:
    """The migration runs once PostgreSQL is healthy and is not restarted after it exits."""
    migrate = services["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"


def test_infrastructure_has_healthchecks_and_volumes(services: dict[str, dict[str, Any]]) -> None:
    """Redis is checked with `redis-cli ping`, PostgreSQL with pg_isready; both keep a volume."""
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["postgres"]["volumes"] and services["redis"]["volumes"]
    env = services["postgres"]["environment"]
    assert {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"} <= set(env)


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` and `${VAR:?error}`, with no VAR set (a token for `:?`)."""

    def one(found: re.Match[str]) -> str:
        return found[3] if found[2] == "-" else "token-from-the-operator"

    return re.sub(r"\$\{(\w+):([-?])((?:[^{}]|\{[^{}]*\})*)\}", one, value)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_environment_names_real_settings(
    name: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ESCALATOR_* variable set in compose is a Settings field, and they build Settings."""
    env = services[name]["environment"]
    fields = {f"ESCALATOR_{field.upper()}" for field in Settings.model_fields}
    unknown = {key for key in env if key.startswith("ESCALATOR_")} - fields
    assert not unknown, f"{name}: not settings: {sorted(unknown)}"
    for key in [k for k in os.environ if k.startswith("ESCALATOR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolate(str(value)))
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.resolved_database_url().startswith("postgresql+psycopg://")
    assert settings.log_format == "json"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_policy_file_is_mounted_read_only_where_settings_point(
    name: str, services: dict[str, dict[str, Any]]
) -> None:
    """ESCALATOR_POLICY_FILE points at a read-only bind of a policy file that loads."""
    service = services[name]
    target = service["environment"]["ESCALATOR_POLICY_FILE"]
    mounts = [v for v in service["volumes"] if isinstance(v, dict) and v.get("target") == target]
    assert len(mounts) == 1, f"{name}: nothing mounted at {target}"
    mount = mounts[0]
    assert mount["type"] == "bind" and mount["read_only"] is True
    source = (ROOT / mount["source"]).resolve()
    assert source == (ROOT / "config" / "default_policy.yaml").resolve()
    load_policy(source)
