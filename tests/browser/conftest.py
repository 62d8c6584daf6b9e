"""Browser fixtures: one live stack behind the console for the module, and headless Chromium.

Chromium is the system's (Debian's `chromium`, or $ESCALATOR_CHROMIUM), driven by playwright
through `executable_path`: playwright downloads no browser. Without one, every browser test
skips, saying how to get one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.console import (
    NO_CHROMIUM,
    WAIT_MS,
    Console,
    find_chromium,
    running_console,
)

TIER_S = 30.0  # long enough to act on an issue at L1, short enough to see clocks move


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium for the module (skipped when there is none); closed after it,
    so that the rest of the session runs without playwright's event loop or a browser."""
    path = find_chromium()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def console(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """api, ingest, scheduler and both Celery workers behind the console, for the module."""
    with running_console(tmp_path_factory.mktemp("console"), tier_s=TIER_S) as live:
        yield live


def new_page(browser: Browser, console: Console, **options: object) -> Iterator[Page]:
    """A page in a fresh context (no cookies) on the console; fails on any script error."""
    context = browser.new_context(base_url=console.url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A desktop-sized page with no session yet."""
    yield from new_page(browser, console, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone(browser: Browser, console: Console) -> Iterator[Page]:
    """A phone-sized page (390x844, touch) with no session yet."""
    yield from new_page(
        browser,
        console,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
