"""Settings: built once at start-up from `ESCALATOR_*` variables and `.env`, then passed down."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.sources import Sources

PACKAGED_POLICY = Path(__file__).with_name("default_policy.yaml")
DEMO_POLICY = Path(__file__).with_name("demo_policy.yaml")


class Settings(BaseSettings):
    """Every knob Escalator has. Unset Redis URL means: run the embedded Redis."""

    model_config = SettingsConfigDict(
        env_prefix="ESCALATOR_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=Path(".data"), description="Embedded Redis and SQLite live here."
    )
    redis_url: str | None = Field(default=None, description="Unset: start the embedded Redis.")
    database_url: str | None = Field(default=None, description="Unset: SQLite in the data dir.")
    policy_file: Path = PACKAGED_POLICY
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = Field(default=None, description="Bearer token for the API.")
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description='Signing secrets by name, JSON: {"ops": "whsec_..."}.'
    )
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"

    # ingest
    ingest_batch: int = Field(default=200, ge=1, le=10_000)
    ingest_block_ms: int = Field(default=1000, ge=10, le=20_000)
    ingest_max_deliveries: int = Field(default=5, ge=1)
    ingest_claim_idle_ms: int = Field(
        default=5_000, ge=100, description="A dead consumer's entries are taken over after this."
    )
    ingest_park_window_s: float = Field(
        default=600.0,
        gt=0,
        description="How long an event waits for its issue.opened before it is dead-lettered.",
    )
    event_max_skew_s: float = Field(
        default=300.0, ge=0, description="Refuse events whose occurred_at is further ahead."
    )
    event_max_age_s: float = Field(
        default=366 * 86400.0,
        gt=0,
        description="Refuse events older than this (default 366 days: a year's backlog imports).",
    )

    # scheduler
    scheduler_poll_s: float = Field(default=0.2, gt=0)
    scheduler_lease_s: float = Field(
        default=5.0, gt=0, description="A running firing's lease, renewed while it runs."
    )
    scheduler_dispatch_lease_s: float = Field(
        default=60.0, gt=0, description="A firing's lease while its task waits in the queue."
    )
    scheduler_max_inflight: int = Field(
        default=2000, ge=1, description="Firings handed to Celery and not yet done, at most."
    )
    scheduler_max_hold_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a due deadline waits for ingest to catch up with the stream.",
    )
    scheduler_batch: int = Field(default=500, ge=1)
    scheduler_fire_batch: int = Field(
        default=50,
        ge=1,
        description="Claimed deadlines per firing task, fired in one transaction (each fenced).",
    )
    reconcile_every_s: float = Field(default=60.0, gt=0)
    reconcile_retry_s: float = Field(default=2.0, gt=0, description="After a failed reconcile.")
    outbox_sweep_every_s: float = Field(default=5.0, gt=0)

    # worker and delivery
    worker_concurrency: int = Field(default=2, ge=1)
    worker_pool: Literal["prefork", "threads", "solo"] = "prefork"
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_backoff_s: float = Field(default=2.0, gt=0)
    delivery_backoff_max_s: float = Field(default=300.0, gt=0)
    delivery_lease_s: float = Field(default=60.0, gt=0)
    delivery_queued_lease_s: float = Field(
        default=600.0, gt=0, description="How long a queued delivery task holds its messages."
    )
    delivery_running_lease_s: float = Field(
        default=15.0, gt=0, description="A running delivery task's hold, renewed every third."
    )

    public_url: str | None = Field(default=None, description="Where people reach this Escalator.")

    # outbound
    templates_dir: Path | None = Field(
        default=None, description="Message templates: KIND[.CHANNEL].title.j2 / .body.j2."
    )
    jira_url: str | None = Field(default=None, description="https://example.atlassian.net")
    jira_user: str | None = Field(default=None, description="The Jira API user's email.")
    jira_token: SecretStr | None = None
    jira_internal_comments: bool = Field(
        default=False, description="Jira Service Management: comments are internal notes."
    )
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    github_repo: str | None = Field(
        default=None, description="owner/repo for GitHub issue ids that do not name their repo."
    )
    zendesk_url: str | None = Field(default=None, description="https://example.zendesk.com")
    zendesk_email: str | None = None
    zendesk_token: SecretStr | None = None
    writeback_webhook_url: str | None = None
    writeback_webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret (whsec_...) for the generic write-back."
    )
    writeback_timeout_s: float = Field(default=10.0, gt=0)
    delivery_concurrency: int = Field(
        default=8, ge=1, description="Messages of one batch sent at once by a worker process."
    )
    # health: heartbeats, the canary, the dead-man's switch (worker/roles/pulse.py, canary.py)
    heartbeat_every_s: float = Field(
        default=5.0,
        gt=0,
        le=10,  # an instance silent for 30 s (3 beats) counts as gone: heartbeats.SILENT_S
        description="How often each role instance records a heartbeat.",
    )
    canary_every_s: float = Field(
        default=5.0,
        ge=0.5,
        le=30,  # deploy/prometheus/alerts.yml calls a canary older than 120 s a stop
        description="How often a scheduler arms a canary deadline that proves escalations run.",
    )
    canary_max_lateness_s: float = Field(
        default=10.0,
        gt=0,
        description="A canary fired later than this after its due time makes the engine unhealthy.",
    )
    heartbeat_url: SecretStr | None = Field(
        default=None,
        description="Dead-man's switch: GET once per canary period while canaries fire on time.",
    )

    # gateway
    sources: Sources = Field(
        default_factory=Sources, description="Webhook sources, JSON: secrets and field maps."
    )
    management_token: SecretStr | None = Field(
        default=None, description="Bearer token of the management API (besides api_token)."
    )
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    gateway_replay_window_s: float = Field(default=300.0, gt=0)
    gateway_dedup_ttl_s: int = Field(default=3 * 86400, ge=60)
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")

    # metrics: Prometheus, multiprocess mode (worker/gateway/metrics.py, docs/metrics.md)
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of /metrics on the roles other than api (unset: none); `escalator "
        "run` gives its non-api roles this port + 1, + 2, ...",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Set by `escalator run` for its roles: the multiprocess directory they "
        "share, cleaned by it at start (a role never cleans it).",
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="A role's multiprocess directory (cleaned at its start); unset: a temp dir.",
    )

    # backtest: every processed event's contents, kept for `escalator policy backtest`
    # (worker/store/event_bodies.py, docs/reports.md: Backtest)
    event_retention_days: float = Field(
        default=400.0,
        gt=0,
        le=36500,
        description="Days the contents of processed events are kept for backtests; older "
        "ones are dropped by the scheduler's housekeeping (the dedup record stays).",
    )
    event_prune_every_s: float = Field(
        default=3600.0, gt=0, description="How often the scheduler drops expired event contents."
    )

    # console: the web console of the api role (worker/gateway/console/, docs/console.md)
    viewer_token: SecretStr | None = Field(
        default=None, description="Read-only sign-in token of the console: it views, never acts."
    )
    console_anonymous: bool = Field(
        default=False, description="Serve the console read-only to anyone, without signing in."
    )
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Signs console session cookies; unset: derived from the tokens.",
    )
    console_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 90, description="How long a console sign-in lasts."
    )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'escalator.db').resolve()}"

    def embedded_socket(self) -> Path:
        """The unix socket the embedded Redis listens on (short enough for the 107-byte limit)."""
        path = (self.data_dir / "redis.sock").resolve()
        if len(str(path)) > 100:
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
            path = Path(tempfile.gettempdir()) / f"escalator-{digest}.sock"
        return path

    def resolved_redis_url(self) -> str:
        """The Redis URL, or the embedded one's socket when none is set."""
        if self.redis_url:
            return self.redis_url
        return f"unix://{self.embedded_socket()}"
