"""Policy versions: an issue keeps the policy file it was opened under.

A version is a digest of the validated file. Ingest stores the current version's body the
first time it applies an event under it; issues name their version, and the roles read older
versions back from the database (cached: a version never changes). A changed file therefore
governs new issues only, until `escalator policy apply --replan` moves the open ones onto it.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.policy import PolicyFile
from worker.store.db import SessionFactory
from worker.store.models import PolicyVersion

log = structlog.get_logger("escalator.policy")
_stored: set[tuple[str, str]] = set()  # (database, version) this process has stored


def body_of(policies: PolicyFile) -> dict[str, object]:
    """The file as stored: its validated content, in JSON types."""
    body: dict[str, object] = policies.model_dump(mode="json")
    return body


def version_of(policies: PolicyFile) -> str:
    """The version of a validated policy file: a digest of its content."""
    return policies.digest()


_parsed: dict[str, PolicyFile] = {}  # version -> file; a version's content never changes


def remember(sessions: SessionFactory, policies: PolicyFile, now: datetime) -> str:
    """Store the file's version once (a race with another process is harmless); its version."""
    version = version_of(policies)
    bind = sessions.kw.get("bind")
    key = (str(getattr(bind, "url", id(sessions))), version)
    if key in _stored:
        return version
    with sessions() as session:
        try:
            with session.begin():
                if session.get(PolicyVersion, version) is None:
                    session.add(
                        PolicyVersion(version=version, body=body_of(policies), created_at=now)
                    )
                    log.info("policy.version_stored", version=version)
        except IntegrityError:
            pass  # another process stored it first
    _stored.add(key)
    return version


def policies_for(session: Session, version: str, current: PolicyFile) -> PolicyFile:
    """The policy file an issue is under: its stored version, else (unknown) the current one."""
    if not version or version == version_of(current):
        return current
    known = _parsed.get(version)
    if known is not None:
        return known
    row = session.get(PolicyVersion, version)
    if row is None:
        log.warning("policy.version_missing", version=version)
        return current
    if len(_parsed) > 64:
        _parsed.clear()
    _parsed[version] = PolicyFile.model_validate(row.body)
    return _parsed[version]


def current(session: Session) -> tuple[str, int] | None:
    """The latest stored version and its number (1 for the first file stored, ...); None
    before any is stored."""
    latest = session.scalars(
        select(PolicyVersion.version).order_by(PolicyVersion.created_at.desc()).limit(1)
    ).first()
    if latest is None:
        return None
    return latest, int(session.scalar(select(func.count()).select_from(PolicyVersion)) or 0)
