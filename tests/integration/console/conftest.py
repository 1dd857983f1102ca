"""A real task service (uvicorn on 127.0.0.1, a free port, a temporary home) and headless Chromium, shared by
the console's browser tests. Chromium is Debian's (/usr/bin/chromium); nothing is downloaded."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TUNEFORGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FINAL = ("succeeded", "failed", "stopped", "interrupted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveService:
    """The service app served by uvicorn in a thread; ``stop`` ends every task it started, then the server."""

    def __init__(self, home: Path):
        import uvicorn

        from tuneforge.apps import create_app
        from tuneforge.service.settings import Settings

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(Settings(home=home, port=self.port, sample_interval=0.5, poll_interval=0.2,
                                       stop_grace=10.0))
        self.service = self.app.state.service
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="console-test-server", daemon=True)

    def start(self) -> "LiveService":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start within 30 s")
            time.sleep(0.05)
        return self

    def wait_final(self, task_id: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            task = self.service.get_task(task_id)
            if task["status"] in FINAL or time.monotonic() > deadline:
                return task
            time.sleep(0.2)

    def stop(self) -> None:
        for task in self.service.list_tasks():
            if task["status"] in ("queued", "running"):
                try:
                    self.service.stop(task["id"])
                except Exception:  # noqa: BLE001 - best effort: the next line waits for the end anyway
                    pass
                self.wait_final(task["id"], 30)
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def live_service(tmp_path_factory):
    pytest.importorskip("uvicorn")
    service = LiveService(tmp_path_factory.mktemp("tuneforge-home")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def chromium():
    # Missing pieces fail (not skip): a browser test that did not run must not look like one that passed.
    # A machine without Chromium deselects these tests with -m "not browser".
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright is not installed (pip install playwright; never 'playwright install'), "
                    "or deselect the browser tests with -m 'not browser'")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set TUNEFORGE_CHROMIUM), "
                    "or deselect the browser tests with -m 'not browser'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors(list):
    """JavaScript errors and console errors of one page. A failed request that the page expects (the API
    answering 400 to a deliberately bad value while the user types) is allowed by URL, nothing else."""

    def __init__(self):
        super().__init__()
        self.allowed_urls: set[str] = set()

    def on_console(self, msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if msg.text.startswith("Failed to load resource") and any(url.endswith(u) for u in self.allowed_urls):
            return
        self.append(f"console error: {msg.text} ({url})")


@pytest.fixture
def page_factory(chromium, tmp_path):
    """``new_page(width, height)`` -> (page, errors); screenshots go to the test's tmp dir; every page must end
    without JavaScript errors."""
    contexts, all_errors = [], []

    def new_page(width: int = 1280, height: int = 800):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        errors = PageErrors()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on("console", errors.on_console)
        all_errors.append(errors)
        return page, errors

    yield new_page
    for context in contexts:
        context.close()
    problems = [e for errors in all_errors for e in errors]
    assert not problems, "JavaScript errors in the console:\n" + "\n".join(problems)


@pytest.fixture
def shot(tmp_path):
    """``shot(page, name)`` saves a full-page screenshot as a test artifact under the test's tmp dir."""
    def save(page, name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path
    return save
