"""`baton demo`: the whole system on one machine — hub and leaf nats-server, cloud
orchestrator with its dashboard, edge daemon, simulated sensors — driven through a
scripted minute (an overheating pump, a wearing bearing, a flaky uplink, bad payloads,
an operator session handed to the cloud and back), then stopped in order and summed up.

    summary, code = await run_demo(DemoOptions(duration_s=60, browser=False), sys.stdout)

`shared` never imports `edge` or `cloud` at module level: the demo runs them as the
`baton edge run` / `baton cloud run` child processes a user would.
"""

from shared.demo.errors import ComponentFailed, DemoError, MissingPiece
from shared.demo.runner import DemoOptions, run_demo
from shared.demo.summary import DemoSummary

__all__ = [
    "ComponentFailed",
    "DemoError",
    "DemoOptions",
    "DemoSummary",
    "MissingPiece",
    "run_demo",
]
