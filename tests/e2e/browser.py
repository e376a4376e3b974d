"""Headless Chromium for the browser tests: one launch, one sign-in, screenshots on failure.

Everything the database needs happens before a test opens the browser: Playwright's sync API
runs an event loop, and Django refuses ORM calls from inside one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, ViewportSize, sync_playwright

from tests.factories import PASSWORD

SCREENSHOTS = Path(os.environ.get("TRAINYARD_ARTIFACTS", "build/artifacts"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(*, name: str, viewport: ViewportSize | None = None) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) in headless Chromium (`TRAINYARD_CHROMIUM`).

    When the block raises, every page still open is saved as `<name>-failure-<n>.png` under
    `TRAINYARD_ARTIFACTS` before the browser closes."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("TRAINYARD_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_FLAGS,
        )
        try:
            context = browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
            try:
                yield context
            except Exception:
                for number, page in enumerate(context.pages):
                    page.screenshot(
                        path=str(SCREENSHOTS / f"{name}-failure-{number}.png"), full_page=True
                    )
                raise
        finally:
            browser.close()


def sign_in(page: Page, username: str) -> None:
    """Submit the login form the portal sent `page` to, as `username` (factories' password)."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def screenshot(page: Page, name: str) -> None:
    """Keep what `page` shows as `<name>.png` with the test artifacts."""
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
