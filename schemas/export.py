"""Export the inbound event contract as JSON Schema: `python -m schemas.export` writes docs/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.events import IssueEvent

DOCS_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "event.schema.json"


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of `IssueEvent`, as producers should read it."""
    return IssueEvent.model_json_schema()


def render() -> str:
    """The schema as committed: two-space indent, sorted keys, trailing newline."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    DOCS_SCHEMA.write_text(render(), encoding="utf-8")
    print(f"wrote {DOCS_SCHEMA}")
