"""The cloud orchestrator's exception tree, rooted under `shared.errors.BatonError`.

CloudError
├── NotFound           an API request names a device, gateway, plan or session we do not know
├── BadRequest         a request is well-formed JSON but asks for something impossible
│   └── TooLarge       a request body over `http.max_body_bytes`
├── Conflict           a compare-and-set lost (stale revision or epoch); retry may help
│   └── PreconditionFailed   the caller's `If-Match` version is not the current one
├── Unavailable        a part this request needs is off or unreachable; retry may help
├── Rejected           a FLEET message was refused at ingest; `.reason` is the counter label
├── PlanError          a plan is invalid or a planner failed (the agent is isolated, not fatal)
└── SagaError          a saga step failed or timed out; its compensations run

Hub errors (nats-py) are translated to `shared.errors.TransportError` in one place,
`cloud.twins.store`.
"""

from __future__ import annotations

from shared.errors import BatonError


class CloudError(BatonError):
    """Root of the cloud orchestrator's errors."""


class NotFound(CloudError):
    pass


class BadRequest(CloudError):
    pass


class TooLarge(BadRequest):
    pass


class Conflict(CloudError):
    retryable = True


class PreconditionFailed(Conflict):
    retryable = False


class Unavailable(CloudError):
    retryable = True


class Rejected(CloudError):
    """A FLEET message we refuse; retrying the same bytes never helps."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class PlanError(CloudError):
    pass


class SagaError(CloudError):
    pass
