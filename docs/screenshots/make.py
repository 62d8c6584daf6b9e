"""Make the README's screenshots of the console from a live stack with demo issues.

    .venv/bin/python docs/screenshots/make.py            # needs Chromium (apt-get install chromium)

Starts every role (tests/support/console.py: a private Redis, SQLite, api, ingest, scheduler,
both Celery workers) with a four-tier policy of two-minute tiers, sends issues in various
states (new, escalated, breached, acknowledged, waiting on the customer), acknowledges one
through the console as "dana", and saves, next to this file:

    board.png        the board at 1280 px
    issue.png        that issue's page: its timeline, deadlines and actions
    board-phone.png  the board on a 390x844 phone
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.support.console import (  # noqa: E402
    ADMIN_TOKEN,
    NO_CHROMIUM,
    WAITING,
    Console,
    find_chromium,
    running_console,
)

TIER_S = 120.0
RESOLVE_S = 4 * 3600.0
ACTED_ON = ("jira", "SHOP-1427")  # the issue of issue.png, acknowledged in the console


def demo_issues(console: Console) -> None:
    """Issues in every state the board shows; wait until each has reached it."""
    now = datetime.now(UTC)

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    # (source, id, severity, title, opened this long ago, the tier it must reach). The issue of
    # issue.png escalates live a few seconds from now, so its timeline shows a punctual firing.
    opened = [
        ("jira", "SHOP-1431", "P1", "Checkout fails for EU cards with 3-D Secure", 25, "L1"),
        ("pagerduty", "Q1YB7ND3", "P1", "Primary database replica lag above 30 s", 560, "manager"),
        ("zendesk", "88412", "P2", "Customer cannot reset two-factor authentication", 265, "L3"),
        (*ACTED_ON, "P1", "Payments API answers 502 for card payments", TIER_S - 8, "L2"),
        ("jira", "SHOP-1419", "P3", "Invoice PDF shows the wrong VAT rate", 70, "L1"),
        ("zendesk", "88397", "P2", "Refund stuck in pending for order 55102", 95, "L1"),
        ("github", "acme-shop-311", "P4", "Typo on the pricing page", 40, "L1"),
    ]
    titles = {(source, issue): title for source, issue, _, title, _, _ in opened}
    for source, issue, severity, title, age, _ in opened:
        console.open_issue(issue, at=ago(age), source=source, severity=severity, title=title)
    later = [  # (source, id, severity, event type, this long ago, extra snapshot fields)
        ("jira", "SHOP-1419", "P3", "issue.acknowledged", 30, {}),
        ("zendesk", "88397", "P2", "issue.acknowledged", 60, {}),
        ("zendesk", "88397", "P2", "issue.status_changed", 50, {"status": WAITING}),
    ]
    for source, issue, severity, kind, age, extra in later:
        title = titles[source, issue]
        console.send(
            kind, issue, at=ago(age), source=source, severity=severity, title=title, **extra
        )
    for source, issue, _, _, _, tier in opened:
        console.stack.wait_for(
            partial(reached, console, source, issue, tier), 60, f"{source}:{issue} at {tier}"
        )
    console.stack.wait_for(
        partial(delivered, console, ACTED_ON[1]), 60, "the messages about it to be sent"
    )


def delivered(console: Console, issue: str) -> bool:
    """Whether every message about the issue went out (its assignment and its escalation)."""
    rows = console.stack.outbox(issue)
    return len(rows) >= 4 and all(row.state == "sent" for row in rows)


def reached(console: Console, source: str, issue: str, tier: str) -> bool:
    """Whether the issue is at that tier now."""
    found = console.stack.issue(issue, source)
    return found is not None and found.tier == tier


def sign_in(page: Page) -> None:
    """Sign in as dana, with full access; the board opens."""
    page.goto("/login")
    page.locator("form#signin input[name=token]").fill(ADMIN_TOKEN)
    page.locator("form#signin input[name=name]").fill("dana")
    page.locator("form#signin button[type=submit]").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def shoot(console: Console, chromium: str, out: Path) -> None:
    source, issue = ACTED_ON
    key = f"{source}:{issue}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        desktop = browser.new_context(
            base_url=console.url, viewport={"width": 1280, "height": 800}, device_scale_factor=1
        )
        page = desktop.new_page()
        sign_in(page)
        page.goto(f"/issues/{key}")
        page.locator('form[data-action="acknowledge"] button[type=submit]').click()
        console.stack.wait_for(
            lambda: getattr(console.stack.issue(issue, source), "lifecycle", "") == "acknowledged",
            30,
            f"{key} to be acknowledged",
        )
        page.goto(f"/issues/{key}")
        page.locator('ol#timeline li[data-kind="event"]', has_text="dana").wait_for()
        page.screenshot(path=str(out / "issue.png"), full_page=True)
        page.goto("/")
        page.locator("tbody#board-body tr[data-issue]").first.wait_for()
        page.wait_for_timeout(1500)  # let the countdowns tick once after the render
        page.screenshot(path=str(out / "board.png"), full_page=True)
        phone = browser.new_context(
            base_url=console.url,
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        small = phone.new_page()
        sign_in(small)
        small.locator("tbody#board-body tr[data-issue]").first.wait_for()
        small.wait_for_timeout(1500)
        small.screenshot(path=str(out / "board-phone.png"))
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the PNGs")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print(NO_CHROMIUM, file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="escalator-shots-") as tmp,
        running_console(Path(tmp), tier_s=TIER_S, resolve_s=RESOLVE_S) as console,
    ):
        demo_issues(console)
        shoot(console, chromium, args.out)
    for name in ("board.png", "issue.png", "board-phone.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
