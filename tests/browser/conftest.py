"""Real headless Chromium against pytest-django's live server (CONTRACT section 1).

Fixtures:
- ``browser``: one Chromium for the tests of this package, launched from /usr/bin/chromium
  through Playwright's sync API. A missing Chromium fails the tests, never skips them.
- ``page``: a fresh browser context and page per test, with the live server as base URL
  (so ``page.goto("/")`` works) and ``page.console_errors``: the console errors and
  uncaught exceptions the page raised, for tests to assert there are none.

When a test fails, the page's screenshot and HTML go to test-artifacts/screenshots/.

pytest-django's ``live_server`` serves static files through staticfiles' finders (it
uses ``StaticFilesHandler`` when django.contrib.staticfiles is installed), so the pages
get their CSS and the admin its scripts without collectstatic.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connections
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    # Root in a container has no user namespaces for Chromium's sandbox.
    "--no-sandbox",
    "--disable-gpu",
    # Without these, Chromium keeps calling home (updates, sync, field trials, QUIC
    # probes) and floods this closed network with refused connections.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Fail fast: a page that does not load in 10 s is broken, not slow.
TIMEOUT_MS = 10_000
ARTIFACTS_DIR = Path("test-artifacts") / "screenshots"


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Browser tests need Chromium at {CHROMIUM}, which is missing: run scripts/ensure_chromium.sh "
            "(as root; `make test` runs it).",
            pytrace=False,
        )
    # While Playwright's sync API is started, its event loop stays registered as the
    # running loop of the main thread, also between calls. Three things follow:
    # - Package scope, not session: the rest of the suite must not run under that loop
    #   (asyncio.run() and async_to_sync refuse to start inside a running loop), so
    #   Playwright stops when this package is done.
    # - Django refuses the tests' ORM calls (factories, pytest-django's flush) with
    #   SynchronousOnlyOperation. Nothing async touches the database here: the loop only
    #   talks to the browser, and the live server answers from its own thread. So allow
    #   it, for exactly as long as Playwright runs.
    # - Django keeps database connections in an asgiref Local that switches to a
    #   per-context store when a loop runs, so the tests would get new connection objects
    #   without the serialized contents that `serialized_rollback` restores after each
    #   flush (the data migrations' groups and stages would be gone from the second test
    #   on). The same connection objects are put in that store, so nothing changes.
    sync_connections = {alias: connections[alias] for alias in connections}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            for alias, connection in sync_connections.items():
                connections[alias] = connection
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, locale="en-US", timezone_id="Asia/Shanghai")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.console_errors = []

    def on_console(message: ConsoleMessage) -> None:
        location = message.location.get("url", "")
        # Chromium asks every site for /favicon.ico on its own and logs the 404; no page
        # asked for it (Django admin's pages declare no icon either), so it is no page's error.
        if message.type == "error" and urlsplit(location).path != "/favicon.ico":
            page.console_errors.append(f"console: {message.text} ({location})")

    def on_page_error(error: Error) -> None:
        page.console_errors.append(f"uncaught: {error.name}: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    yield page
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the test, so fixtures can tell in their teardown
    # whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _page_artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Saves the screenshot and HTML of a failed browser test's page."""
    if "page" not in request.fixturenames:
        yield
        return
    # Requested here, so the page is set up before and closed after this fixture.
    page: Page = request.getfixturevalue("page")
    yield
    node = request.node
    reports = (getattr(node, f"report_{when}", None) for when in ("setup", "call"))
    if not any(report is not None and report.failed for report in reports):
        return
    folder = request.config.rootpath / ARTIFACTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", node.name)
    try:
        page.screenshot(path=folder / f"{name}.png", full_page=True)
        (folder / f"{name}.html").write_text(page.content(), encoding="utf-8")
    except Error as error:
        # The browser may be what broke; the test's own failure is the one to report.
        print(f"Could not save the page of {node.nodeid}: {error}")
    else:
        print(f"Page of the failed test {node.nodeid}: {folder / name}.png and .html")
