"""The Reports page: breach rate and MTTA/MTTR over time, per severity and per tier, the tiers
issues end at, the notes of breached issues, and the tables as CSV.

Every figure comes from `worker.services.reports` (the ones `escalator report` and
`GET /v1/reports/sla` give, explained in docs/reports.md); the charts are drawn on the server
(`charts`). Anyone who may look at the console may look at this page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from worker.domain.reports import PERIODS, SECTIONS, TARGET_ORDER, Report, Row, periods_between
from worker.gateway.console.app import Console, Refused, Who
from worker.gateway.console.charts import Series, Unit, bar_chart, line_chart
from worker.services.reports import (
    Asked,
    ReportError,
    as_csv,
    ask,
    sla_reports,
    sla_reports_and_notes,
)

POINTS_MAX = 400  # periods on a chart's x axis
TEXT = Annotated[str, Query(max_length=60)]


@dataclass(frozen=True, slots=True)
class Form:
    """What the page's form asks for, as typed."""

    since: str = "30d"
    until: str = ""
    by: str = "day"
    tz: str = "UTC"


def _short(period: str, by: str) -> str:
    """An x-axis label: `03-05` for a day, `W10` for a week, `2026-03` for a month."""
    return period[5:] if by in ("day", "week") else period


def _pick(rows: list[Row], **where: Any) -> Row | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in where.items())), None)


def _targets_in(rows: list[Row]) -> list[str]:
    present = {str(r["target"]) for r in rows}
    return [t for t in TARGET_ORDER if t in present]


def _values(keys: list[str], rows: list[Row], key: str, field: str, **where: Any) -> list[Any]:
    return [(r or {}).get(field) for r in (_pick(rows, **{key: k}, **where) for k in keys)]


def _names(rows: list[Row], key: str) -> list[str]:
    return sorted({str(r[key]) for r in rows})


def _title(name: str) -> str:
    return name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart as the page shows it: its SVG and its legend (the series' names in order)."""

    svg: Markup
    legend: list[str]


def _chart(svg: str, series: list[Series]) -> Chart:
    return Chart(Markup(svg), [s.name for s in series])


def charts(over_time: Report, by_severity_time: Report, by_severity: Report,
           by_tier: Report, overall: Report, by: str, tz: str) -> dict[str, Chart]:  # fmt: skip
    """The page's charts, each an `<svg>` and its legend, from the report under each
    grouping: by period, by period and severity, by severity, by tier, and not grouped."""
    keys = periods_between(overall.since, overall.until, by, ZoneInfo(tz))
    labels = [_short(k, by) for k in keys]
    targets = _targets_in(overall.targets)
    severities = _names(by_severity.cycles, "severity")
    tiers = _names(by_tier.cycles, "tier") or _names(overall.tiers, "tier")
    lines = [Series(_title(t), _values(keys, over_time.targets, by, "breach_rate", target=t))
             for t in targets]  # fmt: skip
    drawn = {
        "breach_over_time": _chart(
            line_chart("Breach rate over time, per target", labels, lines, Unit.PERCENT), lines
        )
    }
    for field, name in (("mtta_s", "MTTA"), ("mttr_s", "MTTR")):
        lines = [Series("all", _values(keys, over_time.cycles, by, field))]
        lines += [
            Series(s, _values(keys, by_severity_time.cycles, by, field, severity=s))
            for s in severities
        ]
        title = f"{name} over time, per severity"
        drawn[f"{field}_over_time"] = _chart(line_chart(title, labels, lines, Unit.SECONDS), lines)
    for group, found, names in (("severity", by_severity, severities), ("tier", by_tier, tiers)):
        bars = [Series(_title(t), _values(names, found.targets, group, "breach_rate", target=t))
                for t in targets]  # fmt: skip
        title = f"Breach rate by {group}, per target"
        drawn[f"breach_by_{group}"] = _chart(bar_chart(title, names, bars, Unit.PERCENT), bars)
        bars = [Series(name, _values(names, found.cycles, group, field))
                for field, name in (("mtta_s", "MTTA"), ("mttr_s", "MTTR"))]  # fmt: skip
        title = f"MTTA and MTTR by {group}"
        drawn[f"times_by_{group}"] = _chart(bar_chart(title, names, bars, Unit.SECONDS), bars)
    ended = _names(overall.tiers, "tier")
    bars = [Series(name, _values(ended, overall.tiers, "tier", field))
            for field, name in (("ended", "ended at"), ("reached", "reached"))]  # fmt: skip
    drawn["ended"] = _chart(bar_chart("The tiers issues end at", ended, bars, Unit.COUNT), bars)
    return drawn


def summary(overall: Report) -> dict[str, Any]:
    """The figures over the whole period: clocks, breached, breach rate, cycles, MTTA, MTTR."""
    clocks = sum(int(r["clocks"]) for r in overall.targets)
    breached = sum(int(r["breached"]) for r in overall.targets)
    cycles = overall.cycles[0] if overall.cycles else {}
    return {
        "clocks": clocks,
        "breached": breached,
        "breach_rate": breached / clocks if clocks else None,
        "cycles": cycles.get("cycles", 0),
        "resolved": cycles.get("resolved", 0),
        "mtta_s": cycles.get("mtta_s"),
        "mttr_s": cycles.get("mttr_s"),
        "escalations_per_cycle": cycles.get("escalations_per_cycle"),
    }


def exports(asked: Asked, by: str) -> dict[str, str]:
    """Each table's CSV link, for the period as resolved (absolute times, so that the file
    holds the figures the page shows), grouped by the page's period."""
    base = {"since": asked.since.isoformat(), "until": asked.until.isoformat(), "by": by,
            "tz": asked.tz}  # fmt: skip
    return {s: "/reports/sla.csv?" + urlencode({**base, "section": s}) for s in SECTIONS}


def router(console: Console) -> APIRouter:
    """`GET /reports` (the page) and `GET /reports/sla.csv` (a table as CSV)."""
    api = APIRouter(include_in_schema=False)

    def asked_of(form: Form) -> Asked:
        if form.by not in PERIODS:
            raise ReportError(f"group by one of {', '.join(PERIODS)}")
        asked = ask(form.since or None, form.until or None, [form.by], form.tz or "UTC",
                    console.now())  # fmt: skip
        count = len(periods_between(asked.since, asked.until, form.by, ZoneInfo(asked.tz)))
        if count > POINTS_MAX:
            raise ReportError(f"{count} {form.by}s is too many to draw: choose a longer period")
        return asked

    def build(form: Form) -> dict[str, Any]:
        if console.readers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        asked = asked_of(form)
        groupings = [(form.by,), (form.by, "severity"), ("severity",), ("tier",), ()]
        found, notes = sla_reports_and_notes(console.readers, asked, groupings)
        over_time, severity_time, severity, tier, overall = found
        return {
            "asked": asked,
            "charts": charts(over_time, severity_time, severity, tier, overall, form.by, asked.tz),
            "summary": summary(overall),
            "severities": severity.cycles,
            "tiers": tier.cycles,
            "notes": notes,
            "exports": exports(asked, form.by),
        }

    @api.get("/reports")
    async def reports_page(
        request: Request, visitor: Who, since: TEXT = "30d", until: TEXT = "", by: TEXT = "day",
        tz: TEXT = "UTC",
    ) -> HTMLResponse:  # fmt: skip
        form = Form(since.strip(), until.strip(), by.strip(), tz.strip())
        try:
            context = await run_in_threadpool(build, form)
        except ReportError as exc:
            return console.pages.html(
                "reports.html", status=422, visitor=visitor, path=request.url.path,
                now=console.now(), form=form, periods=PERIODS, error=str(exc),
            )  # fmt: skip
        return console.html(
            request, "reports.html", visitor, form=form, periods=PERIODS, error="", **context
        )

    def csv_of(form: Form, section: str) -> str:
        if console.readers is None:
            raise Refused(503, "No database", "this api process was started without a database")
        [found] = sla_reports(console.readers, asked_of(form), [(form.by,)])
        return as_csv(found, section)

    @api.get("/reports/sla.csv")
    async def export(
        visitor: Who, since: TEXT = "30d", until: TEXT = "", by: TEXT = "day", tz: TEXT = "UTC",
        section: TEXT = "targets",
    ) -> Response:  # fmt: skip
        try:
            body = await run_in_threadpool(csv_of, Form(since, until, by, tz), section)
        except ReportError as exc:
            raise Refused(422, "Bad report request", str(exc)) from None
        name = f"escalator-sla-{section}.csv"
        return Response(
            body,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store"},
        )  # fmt: skip

    return api
