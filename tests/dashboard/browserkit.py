"""A running `baton demo` and a headless Debian Chromium driven by Playwright.

    with DemoProcess(tmp_dir) as demo:          # `python -m shared.demo --port 0 ...`
        with chromium(profile_dir) as browser:  # a Playwright BrowserContext
            page = browser.new_page(); page.goto(demo.url)

Used by the browser tests and by `screenshot.py` (docs/dashboard.png). Chromium is
Debian's (`/usr/bin/chromium`): Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
START_S: Final = 90.0  # a cold start on two loaded cores
STOP_S: Final = 60.0


class DemoProcess:
    """`baton demo --no-browser --port 0` until closed (SIGTERM: it drains and sums up)."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.args = [sys.executable, "-m", "shared.demo", "--no-browser", "--port", "0",
                     "--dir", str(state_dir), *extra]  # fmt: skip
        self.url = ""
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> DemoProcess:
        self._proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, name="demo-output", daemon=True)
        self._reader.start()
        try:
            self.url = self.wait_for(r"^dashboard: (\S+)$", START_S).group(1)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.output.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The next output line matching `pattern` (AssertionError when it never comes)."""
        wanted = re.compile(pattern)
        while True:
            try:
                line = self._lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(self._tail(f"no {pattern!r} in {timeout_s:.0f} s")) from None
            if line is None:
                raise AssertionError(self._tail(f"the demo exited before {pattern!r}"))
            if (match := wanted.search(line)) is not None:
                return match

    def wait(self, timeout_s: float) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout=timeout_s)
        if self._reader is not None:
            self._reader.join(timeout_s)
        return code

    def close(self) -> int | None:
        """SIGTERM and wait for the drain; SIGKILL only if it hangs. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            return self.wait(STOP_S)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def _tail(self, what: str) -> str:
        return what + "; demo output:\n" + "\n".join(self.output[-40:])


def serves_dashboard(url: str) -> bool:
    """Whether the cloud at `url` serves the page (the orchestrator mounts the dashboard)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status == 200 and b"<title>baton" in response.read()
    except urllib.error.HTTPError:
        return False


@contextlib.contextmanager
def chromium(profile_dir: Path) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with a fresh profile, as a Playwright browser context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
