"""Take the README's picture of the dashboard: `docs/dashboard.png`, of a running demo.

    python tests/dashboard/screenshot.py [--out docs/dashboard.png]

Runs `baton demo` until the flaky uplink is over (so the page has readings, reflex
actions, a plan and, where the handoff protocol is installed, a handoff), opens the
dashboard in Debian's Chromium, picks the newest command's trace, and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from browserkit import DemoProcess, chromium

WAIT_MS = 30_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, DemoProcess(Path(tmp) / "demo") as demo:
        demo.wait_for(r"flaky uplink: hub back", timeout_s=120)
        with chromium(Path(tmp) / "profile") as browser:
            page = browser.new_page()
            page.set_viewport_size({"width": 1440, "height": 1080})
            page.goto(demo.url)
            page.wait_for_selector("#fleet tr[data-device]", timeout=WAIT_MS)
            page.wait_for_selector("#plans .row", timeout=WAIT_MS)
            page.wait_for_selector("#agents .agent[data-session]", timeout=WAIT_MS)
            page.locator('#trace-kinds button[data-kind="command"]').click()
            page.locator("#trace-list li[data-trace]").first.click()
            page.wait_for_selector("#trace-view table.waterfall", timeout=WAIT_MS)
            # Let the sparklines fill with live readings after the history loaded.
            page.wait_for_function("() => window.baton.events > 200", timeout=WAIT_MS)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
