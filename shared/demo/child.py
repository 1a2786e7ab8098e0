"""`Child`: one component of the demo run as its own `baton ...` process.

The child's stdout and stderr go, line by line, to its log file under the demo's
directory; `wait_for_line()` waits for a line that says it is ready (the cloud prints
its API URL). An `interactive` child reads its stdin from the demo: `answer(line, ...)`
types a line and waits for the output line that answers it (the operator at
`baton chat`). Children run in their own session, so a Ctrl-C in the terminal reaches
only the demo, which then stops them in order: SIGTERM (each drains), a grace period,
then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from shared.compat import timeout
from shared.demo.errors import ComponentFailed
from shared.lifecycle import Service

log = logging.getLogger(__name__)

# `baton` itself, whatever the console script is called or wherever it is installed.
BATON: Final = (sys.executable, "-m", "shared.cli.main")
STOP_GRACE_S: Final = 15.0  # the cloud drains a batch in hand for up to 10 s
KEEP_LINES: Final = 500


class Child(Service):
    """A child process with its output in `log_path`; `aclose()` is safe to call twice."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_path: Path,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        interactive: bool = False,
    ) -> None:
        self.name = name
        self.args = [*BATON, *args]
        self.log_path = log_path
        self._cwd = cwd
        self._env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self._interactive = interactive
        self.lines: deque[str] = deque(maxlen=KEEP_LINES)  # the output's end, for callers
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # The one pending `wait_for_line`: its pattern and the future the reader resolves.
        self._want: tuple[re.Pattern[str], asyncio.Future[re.Match[str] | None]] | None = None
        self.returncode: int | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=self._cwd,
            env=self._env,
            stdin=subprocess.PIPE if self._interactive else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._copy_output(), name=f"demo-{self.name}-log")

    async def type_line(self, line: str) -> None:
        """Write `line` to an interactive child's stdin (`ComponentFailed` once it exited)."""
        stdin = self._proc.stdin if self._proc is not None else None
        assert stdin is not None, "start() an interactive child first"
        try:
            stdin.write(f"{line}\n".encode())
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self.wait()
            raise self.failure(f"exited with code {self.returncode}") from None

    async def answer(self, line: str, pattern: str, timeout_s: float) -> re.Match[str]:
        """Type `line`, then the next output line matching `pattern` (watched for before
        the line is typed, so a quick answer is not missed)."""
        found = self._watch(pattern)
        await self.type_line(line)
        return await self._found(found, f"no answer to {line!r}", timeout_s)

    def end_input(self) -> None:
        """Close an interactive child's stdin: end of input, as Ctrl-D in a terminal."""
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    async def _copy_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as out:
            try:
                async for raw in self._proc.stdout:
                    line = raw.decode("utf-8", "replace")
                    _write(out, line)
                    self.lines.append(line.rstrip("\n"))
                    self._match(line)
            finally:
                self._resolve(None)  # EOF: the process is gone

    def _match(self, line: str) -> None:
        if self._want is not None and (match := self._want[0].search(line)) is not None:
            self._resolve(match)

    def _resolve(self, match: re.Match[str] | None) -> None:
        want, self._want = self._want, None
        if want is not None and not want[1].done():
            want[1].set_result(match)

    async def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The next output line matching `pattern`; `ComponentFailed` if it exits first."""
        return await self._found(self._watch(pattern), "not ready", timeout_s)

    def _watch(self, pattern: str) -> asyncio.Future[re.Match[str] | None]:
        """The future of the next line matching `pattern` (None: the output ended)."""
        assert self._reader is not None, "start() first"
        found: asyncio.Future[re.Match[str] | None] = asyncio.get_running_loop().create_future()
        if self._reader.done():
            found.set_result(None)
        else:
            self._want = (re.compile(pattern), found)
        return found

    async def _found(
        self, found: asyncio.Future[re.Match[str] | None], what: str, timeout_s: float
    ) -> re.Match[str]:
        try:
            async with timeout(timeout_s):
                match = await found
        except asyncio.TimeoutError:
            raise self.failure(f"{what} after {timeout_s:.0f} s") from None
        finally:
            self._want = None
        if match is None:
            await self.wait()
            raise self.failure(f"exited with code {self.returncode}")
        return match

    def failure(self, what: str) -> ComponentFailed:
        return ComponentFailed(f"{self.name} {what}; see {self.log_path}")

    async def wait(self) -> int:
        """Until the process exits; its return code."""
        assert self._proc is not None, "start() first"
        self.returncode = await self._proc.wait()
        return self.returncode

    async def aclose(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, up to `grace_s` for it to drain and exit, then SIGKILL."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.returncode is None:
                _signal(proc, signal.SIGTERM)
                with contextlib.suppress(asyncio.TimeoutError):
                    async with timeout(grace_s):
                        await proc.wait()
        finally:
            if proc.returncode is None:
                log.warning("%s did not stop in %.0f s; killing it", self.name, grace_s)
                _signal(proc, signal.SIGKILL)
                await proc.wait()
            self.returncode = proc.returncode
            if self._reader is not None:
                await self._reader  # ends at EOF, now that the process is gone
                self._reader = None


def _write(out: IO[str], line: str) -> None:
    out.write(line)
    out.flush()  # a user tailing the log sees it at once


def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
