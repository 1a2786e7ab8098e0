"""The cloud orchestrator's exception tree, rooted under `shared.errors.BatonError`.

CloudError
├── NotFound           an API request names a device, gateway, plan or session we do not know
├── Conflict           a compare-and-set lost (stale revision or epoch); retry may help
├── PlanError          a plan is invalid or a planner failed (the agent is isolated, not fatal)
└── SagaError          a saga step failed or timed out; its compensations run
"""

from __future__ import annotations

from shared.errors import BatonError


class CloudError(BatonError):
    """Root of the cloud orchestrator's errors."""


class NotFound(CloudError):
    pass


class Conflict(CloudError):
    retryable = True


class PlanError(CloudError):
    pass


class SagaError(CloudError):
    pass
