"""Debian's Chromium driven by Playwright, started by the tests themselves (no browser download, ever).

``make test`` installs the ``chromium`` package when it is missing and the
user is root; elsewhere the browser tests are skipped with a message that
says how to get the browser. ``AD_ASSETS_CHROMIUM`` points at another
binary; ``AD_ASSETS_SCREENSHOT_DIR`` keeps the screenshots somewhere known.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


def chromium_path() -> str | None:
    """The system Chromium: ``AD_ASSETS_CHROMIUM``, else /usr/bin/chromium or one on PATH."""
    wanted = os.environ.get("AD_ASSETS_CHROMIUM")
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def launch(pw):
    """A headless Chromium of ``pw`` (a started ``sync_playwright()``), or a skip saying how to get one."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium here: `sudo apt-get install chromium` (make test installs it when run as root)")
    return pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page (its own cookies) that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where the pages' screenshots go (printed at the end of the run by the tests that write them)."""
    chosen = os.environ.get("AD_ASSETS_SCREENSHOT_DIR")
    root = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    root.mkdir(parents=True, exist_ok=True)
    return root
