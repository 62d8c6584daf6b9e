"""Reloading the policy file: a valid change takes effect, an invalid one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.settings import PACKAGED_POLICY
from worker.bootstrap import Container
from worker.broker.keys import POLICY_GENERATION
from worker.cli.main import app
from worker.roles.policy_reload import Reloader, request_reload

BROKEN = "tiers: [{name: L1}]\npolicies: []\ndefault: nowhere\n"


@pytest.fixture
def reloadable(container: Container, tmp_path: Path) -> Container:
    """The unit container, reading its policy from a file the test can rewrite."""
    path = tmp_path / "policy.yaml"
    path.write_text(PACKAGED_POLICY.read_text())
    container.settings = container.settings.model_copy(update={"policy_file": path})
    return container


def test_a_generation_bump_reloads_a_valid_file(reloadable: Container) -> None:
    """After `policy reload` bumps the generation, the role runs the edited file."""
    reloader = Reloader(reloadable, every_s=0)
    path = reloadable.settings.policy_file
    path.write_text(path.read_text().replace("name: critical", "name: sev1"))
    assert reloader.check() is False  # nobody asked yet
    request_reload(reloadable)
    assert reloader.check() is True
    assert reloadable.policies.policies[0].name == "sev1"
    assert reloader.check() is False  # once per request


def test_an_invalid_file_is_refused_and_the_running_policy_stays(
    reloadable: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken file on reload is refused with its errors; the policy in force is kept."""
    before = reloadable.policies
    reloader = Reloader(reloadable, every_s=0)
    reloadable.settings.policy_file.write_text(BROKEN)
    reloader.requested = True  # as SIGHUP does
    assert reloader.check() is False
    assert reloadable.policies is before
    captured = capsys.readouterr()
    assert "policy.reload_refused" in captured.out + captured.err


def test_policy_check_prints_every_error_with_its_line(tmp_path: Path) -> None:
    """`escalator policy check` lists each problem as file:line: field: message and exits 1."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "tiers:\n  - {name: L1, channels: [pager]}\n"
        "policies:\n  - name: p\n    acknowledge: {ladder: [{tier: L9, within: 5m}]}\n"
        "default: nope\n"
    )
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert f"{path}:2: tiers.0.channels.0: no channel named 'pager'" in out
    assert f"{path}:5: policies.0.acknowledge.ladder.0.tier: no tier named 'L9'" in out
    assert f"{path}:6: default: no policy named 'nope'" in out


def test_policy_check_accepts_the_packaged_policy() -> None:
    """The shipped default policy passes `escalator policy check` with exit status 0."""
    result = CliRunner().invoke(app, ["policy", "check", str(PACKAGED_POLICY)])
    assert result.exit_code == 0, result.output
    assert "OK: 4 policies" in result.output


def test_reload_generation_key_is_a_counter(container: Container) -> None:
    """Each request bumps the shared generation counter by one."""
    assert request_reload(container) == 1
    assert request_reload(container) == 2
    assert container.redis.get(POLICY_GENERATION) == "2"
