"""Fixtures of the browser tests: one running demo per module, one headless Chromium.

demo      the dashboard's URL of a `baton demo --no-browser --port 0` that runs for the
          module; skipped when the cloud does not serve the dashboard
browser   a Playwright context on Debian's /usr/bin/chromium with a fresh profile;
          skipped, with the reason, when Chromium or the playwright package is missing
page      a new page on the dashboard, closed after the test
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from browserkit import CHROMIUM, DemoProcess, chromium, serves_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed ({CHROMIUM}); CI installs it")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright package is not installed (pip install 'baton[dev]')")
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def demo(browser: BrowserContext, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with DemoProcess(tmp_path_factory.mktemp("demo")) as running:
        if not serves_dashboard(running.url):
            pytest.skip(
                "the cloud orchestrator does not mount the dashboard yet (Dashboard.attach)"
            )
        yield running.url
        code = running.close()
    assert code == 0, "\n".join(running.output[-30:])


@pytest.fixture
def page(browser: BrowserContext, demo: str) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo)
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
