"""What the browser tests share: a real WSGI server on loopback and headless Chromium.

The server is a threaded WSGI server in this process, bound to 127.0.0.1,
serving the test database with committed data (pytest-django's
``live_server`` would flush the session's tenants). Needs Debian's
``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); the tests
are skipped with a reason when they are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer
from django.core.wsgi import get_wsgi_application
from django.test.testcases import QuietWSGIRequestHandler
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 20

needs_chromium = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); .ci/run installs them",
)


@dataclass(frozen=True)
class Server:
    port: int

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server(committed: Callable[[str], None]) -> Iterator[Server]:
    """A threaded WSGI server on a free loopback port, running the project's
    WSGI application (tenant middleware included) behind Django's static files
    handler, so that the admin's CSS and JavaScript load without collectstatic.
    Each request thread opens its own connection to the test database and
    closes it when the request is done; it sees only committed rows."""
    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietWSGIRequestHandler, allow_reuse_address=False)
    httpd.set_app(StaticFilesHandler(get_wsgi_application()))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Server(port=httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's ChromeDriver; Selenium Manager
    is told to stay offline and is never needed (both paths are given)."""
    monkeypatch.setenv("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="chromium-test-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1024",
        f"--user-data-dir={profile}",
        # *.localhost is loopback in Chromium anyway; pin it to the IPv4
        # address the server listens on.
        "--host-resolver-rules=MAP *.localhost 127.0.0.1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def screenshot_on_failure(driver: Any, name: str) -> Iterator[None]:
    """On any failure inside the block: a screenshot and the page source in
    /tmp, named in the output, before the error goes on."""
    try:
        yield
    except BaseException:
        path = Path(tempfile.gettempdir()) / f"browser-{name}.png"
        try:
            driver.save_screenshot(str(path))
            path.with_suffix(".html").write_text(driver.page_source)
            print(f"screenshot: {path} (page source beside it); url: {driver.current_url}")
        except Exception as exc:  # the browser may be gone
            print(f"no screenshot: {exc!r}")
        raise


def wait_for(driver: Any, css: str) -> None:
    """Wait until the page shows ``css``, or is one of the project's JSON
    error bodies (no HTML: Chromium shows it in a ``pre``), and fail on the
    latter with what the server said."""
    WebDriverWait(driver, WAIT_SECONDS).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"{css}, body > pre")))
    errors = driver.find_elements(By.CSS_SELECTOR, "body > pre")
    assert not errors, f"{driver.current_url}: {errors[0].text[:500]}"
