"""A child process watched line by line: started, waited on for a marker line, measured, stopped.

Output (stdout and stderr together) goes to a log file, so a failed benchmark leaves the
child's own words behind; the last lines are quoted in the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from shared.compat import timeout

STOP_GRACE_S = 10.0
READER_GRACE_S = 5.0
TAIL_LINES = 15

Match = Callable[[str], bool]


class ChildError(RuntimeError):
    """The child exited or did not say what we waited for; the message quotes its log."""


class Child:
    """`async with Child(argv, log) as c: line = await c.wait_for(lambda l: "ready" in l)`."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._env = env
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._waiters: list[tuple[Match, asyncio.Future[str]]] = []
        self.started_at = 0.0
        """`time.perf_counter()` just before the spawn."""

    async def __aenter__(self) -> Child:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.started_at = time.perf_counter()
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(), name=f"bench-child-{self._proc.pid}")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ChildError("not started")
        return self._proc.pid

    def since_start(self) -> float:
        """Seconds since the spawn."""
        return time.perf_counter() - self.started_at

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            while line := await self._proc.stdout.readline():
                text = line.decode("utf-8", "replace").rstrip("\n")
                log.write(text + "\n")
                self._tail.append(text)
                self._match(text)
        await self._proc.wait()
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(self.error(f"exited with code {self._proc.returncode}"))

    def _match(self, line: str) -> None:
        for match, fut in self._waiters:
            if not fut.done() and match(line):
                fut.set_result(line)
        self._waiters = [(m, f) for m, f in self._waiters if not f.done()]

    async def wait_for(self, match: Match, timeout_s: float) -> str:
        """The first line from now on that `match`es; `ChildError` on exit or timeout."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if not self.running:
            raise self.error("is not running")
        self._waiters.append((match, fut))
        try:
            async with timeout(timeout_s):
                return await fut
        except asyncio.TimeoutError:
            raise self.error(f"said nothing expected in {timeout_s:.0f} s") from None

    async def wait(self, timeout_s: float) -> int:
        """Wait for the child to exit by itself; its exit code. `ChildError` on timeout."""
        assert self._proc is not None
        try:
            async with timeout(timeout_s):
                code = await self._proc.wait()
        except asyncio.TimeoutError:
            raise self.error(f"still running after {timeout_s:.0f} s") from None
        await self._end_reader()
        return code

    def error(self, what: str) -> ChildError:
        tail = "\n  ".join(self._tail)
        return ChildError(f"{Path(self.argv[0]).name} {what}; log {self.log_path}:\n  {tail}")

    def memory_mb(self) -> tuple[float, float]:
        """(RSS now, peak RSS) in MB from /proc; (0, 0) once it has exited."""
        return read_memory_mb(self.pid) if self.running else (0.0, 0.0)

    async def stop(self, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, up to `grace` seconds, then SIGKILL. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with timeout(grace):
                    await proc.wait()
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._end_reader()
        return proc.returncode

    async def _end_reader(self) -> None:
        # A grandchild that kept our pipe open would keep the reader waiting for EOF.
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            async with timeout(READER_GRACE_S):
                await asyncio.shield(reader)
        except asyncio.TimeoutError:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def read_memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB (10^6 bytes), from /proc/<pid>/status."""
    fields: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) * 1024 / 1e6
    except (OSError, ValueError):
        return 0.0, 0.0
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]
