"""A power cut a test can pull: a FUSE filesystem that forgets what was not fsynced.

A SIGKILL cannot show that `sync_interval: always` matters: what a process wrote but did
not fsync is in the kernel's page cache and survives it. A power cut loses it. This
filesystem (in the spirit of LazyFS, Jepsen's tool for the same question) keeps two trees:

    live/      what processes see: every write lands here at once (the page cache)
    durable/   what a power cut leaves: a file's content reaches it only on fsync
               (namespace changes — create, mkdir, rename, unlink — are taken as durable
               at once, as a journaling filesystem's ordered mode nearly makes them)

Writing anything to `<mount>/.powercut` (with every process using the mount killed
first) throws live/ away and restores it from durable/: the disk as the machine finds
it after the lights come back. Writing "<seconds> [path part]" to `<mount>/.fsync_delay`
makes each fsync (of the files whose path contains the part) take that long from then
on: a slow SD card, or one slow stream.

    python datapath_powercut.py <backing dir> <mount point>     # runs until unmounted

Needs Linux, /dev/fuse, the right to mount (root or fusermount), libfuse2 and the
`fusepy` package; `available()` says whether this machine has them.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TRIGGER = "/.powercut"
# Writing seconds here makes every fsync take that long: a slow SD card, on demand.
FSYNC_DELAY = "/.fsync_delay"
_MAGIC = (TRIGGER, FSYNC_DELAY)


def available() -> str | None:
    """None when a power-cut mount can work here, else why not."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    try:
        import fuse  # noqa: F401  (fusepy)
    except (ImportError, OSError) as exc:  # OSError: no libfuse.so.2
        return f"fusepy/libfuse2 not installed ({exc})"
    if os.geteuid() != 0 and shutil.which("fusermount") is None:
        return "not root and no fusermount"
    return None


def _make_ops() -> Any:
    from fuse import FuseOSError, Operations

    class ForgetfulFS(Operations):  # type: ignore[misc]
        """Passthrough to live/; content copied to durable/ on fsync only."""

        def __init__(self, backing: Path) -> None:
            self.live = backing / "live"
            self.durable = backing / "durable"
            for tree in (self.live, self.durable):
                tree.mkdir(parents=True, exist_ok=True)
            self._mutex = threading.RLock()
            # Writes and truncations since a path's last fsync, in order.
            self.pending: dict[str, list[tuple[str, int, bytes]]] = defaultdict(list)
            self.cuts = 0
            self.fsync_delay_s = 0.0
            self.fsync_delay_only = ""  # a path substring; empty: every file

        def _live(self, path: str) -> str:
            return str(self.live / path.lstrip("/"))

        def _durable(self, path: str) -> str:
            return str(self.durable / path.lstrip("/"))

        def __call__(self, op: str, path: str, *args: Any) -> Any:
            with self._mutex:
                try:
                    return super().__call__(op, path, *args)
                except OSError as exc:
                    raise FuseOSError(exc.errno or errno.EIO) from exc

        # -- reads ------------------------------------------------------------------

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            if path in _MAGIC:
                return {"st_mode": 0o100600, "st_nlink": 1, "st_size": 0}
            st = os.lstat(self._live(path))
            keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink")
            return {k: getattr(st, k) for k in (*keys, "st_size", "st_uid")}

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(self._live(path))]

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, size, offset)

        def statfs(self, path: str) -> dict[str, Any]:
            st = os.statvfs(self._live(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            return {
                k: getattr(st, k) for k in (*keys, "f_files", "f_flag", "f_frsize", "f_namemax")
            }

        def access(self, path: str, amode: int) -> int:
            return 0

        # -- namespace (durable at once) ------------------------------------------------

        def mkdir(self, path: str, mode: int) -> None:
            os.mkdir(self._live(path), mode)
            os.makedirs(self._durable(path), exist_ok=True)

        def rmdir(self, path: str) -> None:
            os.rmdir(self._live(path))
            shutil.rmtree(self._durable(path), ignore_errors=True)

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            if path in _MAGIC:
                return self.open(path, os.O_WRONLY)
            fd = os.open(self._live(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)
            Path(self._durable(path)).touch(mode)
            self.pending.pop(path, None)
            return fd

        def open(self, path: str, flags: int) -> int:
            if path in _MAGIC:
                if path == TRIGGER:
                    self._power_cut()
                return os.open(os.devnull, os.O_WRONLY)
            if flags & os.O_TRUNC:
                self.pending[path].append(("t", 0, b""))
            return os.open(self._live(path), flags & ~os.O_CREAT)

        def unlink(self, path: str) -> None:
            os.unlink(self._live(path))
            self.pending.pop(path, None)
            Path(self._durable(path)).unlink(missing_ok=True)

        def rename(self, old: str, new: str) -> None:
            os.rename(self._live(old), self._live(new))
            if os.path.lexists(self._durable(old)):
                os.rename(self._durable(old), self._durable(new))
            moved = self.pending.pop(old, None)
            self.pending.pop(new, None)
            if moved:
                self.pending[new] = moved

        def chmod(self, path: str, mode: int) -> None:
            os.chmod(self._live(path), mode)

        def chown(self, path: str, uid: int, gid: int) -> None:
            os.chown(self._live(path), uid, gid)

        def utimens(self, path: str, times: Any = None) -> None:
            os.utime(self._live(path), times)

        # -- content (durable on fsync) ------------------------------------------------

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if path in _MAGIC:
                if path == FSYNC_DELAY:
                    seconds, _, only = bytes(data).decode().strip().partition(" ")
                    self.fsync_delay_s, self.fsync_delay_only = float(seconds or 0), only
                return len(data)
            written = os.pwrite(fh, data, offset)
            self.pending[path].append(("w", offset, bytes(data[:written])))
            return written

        def truncate(self, path: str, length: int, fh: int | None = None) -> None:
            if path in _MAGIC:
                return
            os.truncate(self._live(path), length)
            self.pending[path].append(("t", length, b""))

        def fsync(self, path: str, datasync: int, fh: int) -> None:
            if self.fsync_delay_s and self.fsync_delay_only in path:
                time.sleep(self.fsync_delay_s)  # the slow disk this knob stands for
            ops = self.pending.pop(path, [])
            if not ops:
                return
            fd = os.open(self._durable(path), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for kind, at, data in ops:
                    if kind == "w":
                        os.pwrite(fd, data, at)
                    else:
                        os.ftruncate(fd, at)
            finally:
                os.close(fd)

        def flush(self, path: str, fh: int) -> None:
            return None

        def release(self, path: str, fh: int) -> None:
            os.close(fh)

        # -- the power cut ---------------------------------------------------------------

        def _power_cut(self) -> None:
            shutil.rmtree(self.live)
            shutil.copytree(self.durable, self.live)
            self.pending.clear()
            self.cuts += 1

    return ForgetfulFS


def main(argv: list[str]) -> int:
    from fuse import FUSE

    backing, mount = Path(argv[1]), Path(argv[2])
    mount.mkdir(parents=True, exist_ok=True)
    FUSE(_make_ops()(backing), str(mount), foreground=True, nothreads=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
