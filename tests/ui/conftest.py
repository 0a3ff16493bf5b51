"""A real headless browser for the viewer: Playwright driving Debian's Chromium.

``make chromium`` (run by ``.ci/run`` and before ``make test``) installs /usr/bin/chromium
when it is missing and we are root; these tests skip, saying why, only when it is still
absent. Playwright's own browser download is never used. Screenshots go to
``test-artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("LLMTRACE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Module scope, never session: while Playwright's sync API is open, its event loop stays
# registered as the running loop of the main thread (its dispatcher runs in a greenlet of
# this thread), so every asyncio.run() in a later test would fail with "cannot be called
# from a running event loop". Closed at the end of each viewer module, it leaves nothing
# behind for the modules that run after it, in whatever order.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed and could not be installed here (make "
                    "chromium installs Debian's chromium as root); browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
