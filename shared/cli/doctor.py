"""`baton doctor`: what is installed and usable on this machine, and what to do about it.

Each check is a small function returning a `Check`; heavy packages are only imported
inside their own check (onnxruntime, to list its execution providers), versions come
from package metadata. The command exits 1 only when a required base piece
(nats-server, nats-py) is missing: everything else degrades a feature, not the system.
"""

from __future__ import annotations

import glob
import json
import logging
import platform
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import click

from shared.errors import BinaryNotFound

log = logging.getLogger(__name__)

Status = Literal["ok", "missing", "warn", "info"]
_LABELS: dict[Status, str] = {"ok": "OK", "missing": "MISSING", "warn": "WARN", "info": "--"}
MIN_PYTHON = (3, 10)
MIN_NATS_SERVER = (2, 10)
# Below this a JetStream store (readings buffered through an uplink outage) fills fast.
LOW_DISK_BYTES = 1 << 30
# nvidia-smi and mosquitto answer at once; a hung driver must not hang the doctor.
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    required: bool = False
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.required and self.status == "missing"


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= MIN_PYTHON
    detail = f"{version} {platform.python_implementation()} ({sys.executable})"
    return Check("python", "ok" if ok else "missing", detail, True, "" if ok else "needs 3.10+")


def _platform() -> Check:
    libc, libc_version = platform.libc_ver()
    parts = [f"{platform.system()} {platform.machine()}", f"{libc} {libc_version}".strip()]
    model = Path("/proc/device-tree/model")  # Raspberry Pi and Jetson name themselves here
    if model.is_file():
        parts.append(model.read_text(errors="replace").rstrip("\x00\n"))
    return Check("platform", "info", ", ".join(p for p in parts if p))


def _nats_server() -> Check:
    from shared.natsrun.binary import INSTALL_HINT, find_nats_server, nats_server_version

    try:
        binary = find_nats_server()
        version = nats_server_version(binary)
    except BinaryNotFound as exc:
        return Check("nats-server", "missing", str(exc).split(";")[0], True, INSTALL_HINT)
    if _version_tuple(version) < MIN_NATS_SERVER:
        return Check("nats-server", "missing", f"{version} at {binary}", True, "needs 2.10+")
    return Check("nats-server", "ok", f"{version} ({binary})", True)


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def _dist(name: str, dist: str, *, required: bool = False, hint: str = "") -> Check:
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return Check(name, "missing", "not installed", required, hint or f"pip install {dist}")
    return Check(name, "ok", version, required)


def _onnxruntime() -> Check:
    hint = "pip install onnxruntime (onnxruntime-gpu on a Jetson, from NVIDIA's index)"
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            version = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    else:
        return Check("onnxruntime", "missing", "not installed", hint=hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we report providers, not its deprecations
            import onnxruntime

            providers = onnxruntime.get_available_providers()
    except Exception as exc:  # a broken native install is what the doctor is for
        return Check("onnxruntime", "warn", f"{dist} {version} fails to import: {exc}", hint=hint)
    return Check("onnxruntime", "ok", f"{version} ({dist}), providers: {', '.join(providers)}")


def _disk(directory: Path) -> Check:
    try:
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        return Check("disk", "warn", f"{directory}: {exc}")
    status: Status = "ok" if free >= LOW_DISK_BYTES else "warn"
    hint = "" if status == "ok" else "JetStream buffers readings here during an uplink outage"
    return Check("disk", status, f"{free / (1 << 30):.1f} GiB free in {directory}", hint=hint)


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if smi:
        query = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        out = _probe([smi, *query])
        return Check("gpu", "ok" if out else "warn", out or f"{smi} did not answer")
    if glob.glob("/dev/nvhost*"):
        release = Path("/etc/nv_tegra_release")
        detail = release.read_text(errors="replace").splitlines()[0] if release.is_file() else ""
        return Check("gpu", "ok", f"NVIDIA Jetson (/dev/nvhost*) {detail}".strip())
    return Check("gpu", "info", "none found (no nvidia-smi, no /dev/nvhost*): CPU inference")


def _mosquitto() -> Check:
    binary = shutil.which("mosquitto")
    if binary is None:
        hint = "optional: apt install mosquitto (another MQTT broker for the sensors)"
        return Check("mosquitto", "info", "not installed", hint=hint)
    # `mosquitto -h` prints "mosquitto version X.Y.Z" first and exits non-zero.
    first = _probe([binary, "-h"]).splitlines()
    return Check("mosquitto", "ok", f"{first[0] if first else 'unknown version'} ({binary})")


def _probe(argv: list[str]) -> str:
    """Stdout of a quick command, or '' when it fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("probe %s failed: %s", argv[0], exc)
        return ""
    return done.stdout.strip()


def run_checks(directory: Path) -> list[Check]:
    """Every check, in report order."""
    llm_hint = "pip install 'baton[llm]' (compiles llama.cpp; needed for the local agent)"
    checks: list[Callable[[], Check]] = [
        _python,
        _platform,
        _nats_server,
        lambda: _dist("nats-py", "nats-py", required=True),
        _onnxruntime,
        lambda: _dist("llama-cpp-python", "llama-cpp-python", hint=llm_hint),
        lambda: _dist("aiortc", "aiortc"),
        lambda: _dist("paho-mqtt", "paho-mqtt"),
        lambda: _dist("pydantic", "pydantic"),
        lambda: _disk(directory),
        _gpu,
        _mosquitto,
    ]
    return [check() for check in checks]


@click.command(name="doctor")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.cwd,
    show_default="the current directory",
    help="Where state will live, for the free-disk check.",
)
def doctor(as_json: bool, directory: Path) -> None:
    """Check what baton can use on this machine.

    \b
    Reports Python, the platform, the nats-server binary, nats-py, onnxruntime and
    its execution providers, llama-cpp-python, aiortc, paho-mqtt, pydantic, free
    disk, a GPU (NVIDIA or Jetson) and a mosquitto broker, each OK or MISSING with
    what to do. Exits 1 when a required piece (nats-server, nats-py) is missing.
    """
    checks = run_checks(directory)
    failed = [c.name for c in checks if c.failed]
    if as_json:
        doc = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        click.echo(json.dumps(doc, indent=2))
    else:
        _echo_table(checks, failed)
    if failed:
        # SystemExit, not ctx.exit(): click returns an Exit's code from main() in
        # non-standalone mode instead of exiting with it.
        sys.exit(1)


def _echo_table(checks: list[Check], failed: list[str]) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        label = _LABELS[check.status]
        click.echo(f"{label:<8} {check.name:<{width}}  {check.detail}")
        if check.hint and check.status != "ok":
            click.echo(f"{'':<8} {'':<{width}}  -> {check.hint}")
    click.echo("")
    if failed:
        click.echo(f"missing required: {', '.join(failed)}")
    else:
        click.echo("all required pieces are present; next: baton nats up")
