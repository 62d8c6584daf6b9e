"""OpenAPI: complete with problem responses; schemathesis finds no 5xx and no off-schema answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import schemathesis
from alembic import command
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from config.settings import Settings
from tests.support import webhooks as wh
from worker.broker import canary
from worker.gateway import create_app
from worker.store.db import create_all, make_engine
from worker.store.migrate import alembic_config
from worker.store.models import Issue

from .test_management import T0

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The app on fakeredis and SQLite with one issue; two sources open so bodies reach mapping."""
    tmp: Path = tmp_path_factory.mktemp("openapi")
    engine = make_engine(f"sqlite:///{tmp / 'gw.db'}")
    create_all(engine)
    command.stamp(alembic_config(f"sqlite:///{tmp / 'gw.db'}"), "head")  # /readyz: at head
    with Session(engine) as s, s.begin():
        s.add(Issue(source="github", external_id="a#1", title="t", severity="P2", status="open",
                    assignee=None, labels=[], url=None, policy_name="p", lifecycle="open",
                    tier_index=0, tier="L1", clock_version=1, cycle_started_at=T0,
                    lifecycle_at=T0, snapshot_at=T0, created_at=T0, updated_at=T0))  # fmt: skip
    sources = json.loads(wh.sources_env(zendesk={"insecure": True},
                                        alertmanager={"secrets": [wh.TOKEN]}))  # fmt: skip
    server = fakeredis.FakeServer()
    # /health/engine: a canary fired just now, and a window longer than the test
    canary.record(fakeredis.FakeRedis(server=server), [canary.canary_id(time.time())], time.time())
    config = Settings(
        _env_file=None,
        data_dir=tmp,
        api_token=wh.TOKEN,
        sources=sources,
        canary_every_s=30,
        canary_max_lateness_s=3600,
    )
    yield create_app(
        config, lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True), engine
    )
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(gateway: object) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", gateway)


def test_every_operation_documents_its_problem_answers(gateway: object) -> None:
    """Each POST documents 401/422/503 as application/problem+json with the Problem schema."""
    document = TestClient(gateway).get("/openapi.json").json()  # type: ignore[arg-type]
    posts = [op["post"] for op in document["paths"].values() if "post" in op]
    assert len(posts) == 12  # with POST /v1/issues/{key}/notes and /v1/policies/backtest
    for op in posts:
        for code in ("401", "422", "503"):
            content = op["responses"][code]["content"]
            assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert "IssueEvent" in document["components"]["schemas"]


def test_schemathesis_finds_no_server_error_and_no_off_schema_answer(
    api_schema: schemathesis.BaseSchema,
) -> None:
    """Requests generated for every operation (API token) get no 5xx and no off-schema answer."""
    operations: list[schemathesis.APIOperation[Any, Any, Any, Any]] = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    # 6 intake, 2 reads, 4 actions, healthz, readyz, health/engine, reports/sla, notes,
    # policies/backtest
    assert len(operations) == 18

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers={"authorization": f"Bearer {wh.TOKEN}"}, checks=CHECKS)

        run()
