"""The live dashboard the cloud orchestrator serves at `/`.

    dashboard = await Dashboard.attach(app, nc)   # in the replica's start, after create_app
    await dashboard.aclose()                      # in its stop, before the event bus closes

The page is static (HTML, plain ES modules, CSS, and Cytoscape.js vendored under
`static/vendor/`, see its `VENDORED.md`): the Python package ships it built, so nobody
needs Node. It reads the API (`/api/fleet`, `/api/devices/...`, `/api/plans`) and stays
current on `/api/events` (server-sent events), where `Dashboard` adds what the page needs
beyond the API: agent streams, handoffs, the reading flow, the flow graph and traces
(`cloud.dashboard.service`). Spans are also exported through OpenTelemetry when an OTLP
endpoint is configured (`cloud.dashboard.otel`).
"""

from cloud.dashboard.service import Dashboard
from cloud.dashboard.spans import Span

__all__ = ["Dashboard", "Span"]
