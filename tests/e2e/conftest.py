"""Browser tests: Playwright for Python driving Debian's Chromium against
pytest-django's live server, both on 127.0.0.1.

Playwright's own browser download cannot work here, so Chromium is launched
by its path. The tests skip, saying why, when it or Playwright is absent;
.ci/run installs both.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The live server listens on the loopback address only, never on a name that
# could resolve elsewhere; pytest-django reads this when it starts the server.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"


@pytest.fixture
def async_unsafe_allowed(monkeypatch):
    """Playwright's sync API runs an event loop in this thread, and Django
    refuses ORM calls while one runs unless told that this is safe. Here it
    is: the test and the live server each use their own connection."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(async_unsafe_allowed):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed"
    )
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM}")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


@pytest.fixture
def short_lived_connections(monkeypatch):
    """Each request thread of the live server closes its database connection
    when the request ends. Kept open (CONN_MAX_AGE), PostgreSQL would refuse
    to drop the test database while they linger."""
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


@pytest.fixture
def page(browser, short_lived_connections, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()

    # Connections the test opened while Playwright's loop ran are not the
    # ones pytest-django closes; left open, PostgreSQL keeps the test
    # database busy at teardown.
    from django.db import connections

    connections.close_all()


@pytest.fixture
def screenshot(page):
    """Save a full-page screenshot as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
