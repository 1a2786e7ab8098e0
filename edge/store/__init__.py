"""Local state in SQLite: the audit trail, rollups, twin and fencing (see `db`)."""

from edge.store.db import DB_FILE, EdgeStore
from edge.store.records import (
    ActionRecord,
    AuditBatch,
    QuarantineEntry,
    RollupDelta,
    TicketRecord,
    TwinRecord,
)
from edge.store.rollups import RollupBook
from edge.store.runner import AsyncStore
from edge.store.writer import AuditWriter

__all__ = [
    "DB_FILE",
    "ActionRecord",
    "AsyncStore",
    "AuditBatch",
    "AuditWriter",
    "EdgeStore",
    "QuarantineEntry",
    "RollupBook",
    "RollupDelta",
    "TicketRecord",
    "TwinRecord",
]
