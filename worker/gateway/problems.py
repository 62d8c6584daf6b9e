"""Answers: RFC 9457 problem details for every refusal, and the receipt of an accepted request."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from worker.errors import Rejected

PROBLEM = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Where: a dotted path into the body, or `header: Name`.")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class Receipt(BaseModel):
    """What became of a request: its events are on the stream (or it had none, or was seen)."""

    status: Literal["accepted", "duplicate", "ignored"] = Field(
        description="accepted (202): on the stream now; duplicate (200): this delivery was "
        "accepted before, nothing added; ignored (200): nothing in it concerns an SLA."
    )
    event_ids: list[str] = Field(description="The events it produced (for a duplicate: the first).")
    stream_ids: list[str] = Field(description="Their entries on the Redis stream.")
    detail: str | None = None


def problem_response(exc: Rejected) -> JSONResponse:
    body = Problem(
        title=exc.title,
        status=exc.status,
        detail=exc.detail,
        errors=[FieldError(**e) for e in exc.errors] if exc.errors else None,
    )
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=exc.status,
        media_type=PROBLEM,
        headers=headers,
    )


def invalid(errors: list[dict[str, str]], title: str = "Invalid request") -> Rejected:
    """A 422 naming every bad field."""
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Rejected(422, title, detail, errors)


def pydantic_errors(errors: list[Any], prefix: str = "") -> list[dict[str, str]]:
    """Pydantic error dicts as {field, message}, with the location as a dotted path."""
    out = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        out.append({"field": f"{prefix}{loc}" or "body", "message": str(err.get("msg", ""))})
    return out


DESCRIPTIONS = {
    200: "Seen before (duplicate) or nothing to do (ignored); nothing was added.",
    202: "Accepted: its events are on the stream.",
    400: "The body is not JSON (or not UTF-8).",
    401: "Missing or wrong signature or token, or a timestamp outside the replay window.",
    404: "Not found, or this source is not configured.",
    413: "The body is larger than the limit (1 MiB by default).",
    422: "The request does not validate; `errors` names every bad field.",
    503: "Redis (or the database) is unavailable; retry.",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these problem codes (content type fixed in `fix_openapi`)."""
    return {code: {"model": Problem, "description": DESCRIPTIONS[code]} for code in codes}


def fix_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Problems are served as application/problem+json: say so in the document."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code[0] in "45" and "application/json" in content:
                    content[PROBLEM] = content.pop("application/json")
    return schema
