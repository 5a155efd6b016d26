"""Pipeline stages: each is a loop over its inbox that sends to its outbox.

A stage's ``run(inbox, outbox, ctx)`` consumes until the inbox ends, acknowledges each delivery once
its results were handed on, and closes its outbox handle on return so the next stage ends in turn.
Per-item failures become outcomes; an exception escaping ``run`` means the stage itself is broken.
"""

from .ingest import IngestStage
from .process import ProcessStage
from .store import StoreStage
from .symbolicate import SymbolicateStage

__all__ = ["IngestStage", "SymbolicateStage", "ProcessStage", "StoreStage"]
