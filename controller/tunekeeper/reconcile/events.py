"""How apply reports what it does: the ``EventSink`` protocol and two sinks.

``apply`` and ``converge`` call a sink; the CLI implements one with rich progress bars, tests
and the operator use ``NullSink`` or ``LogSink``. Sinks only display: they never decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from tunekeeper.reconcile.model import Action

log = logging.getLogger("tunekeeper.reconcile")


class Outcome(str, Enum):
    DONE = "done"  # the action did what it says
    DEFERRED = "deferred"  # a prerequisite is not ready yet (file processing, parent training); next loop
    RETRY = "retry"  # a transient cloud error; retried on the next loop after ``retry_after``
    FAILED = "failed"  # a permanent error; recorded in status, other resources go on
    SKIPPED = "skipped"  # not attempted (stop_after reached, or an earlier step of the resource failed)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    outcome: Outcome
    message: str = ""  # a sentence for people: what happened, or the error
    retry_after: float | None = None  # seconds, for RETRY


class EventSink(Protocol):
    def action_started(self, action: Action) -> None: ...
    def action_finished(self, action: Action, outcome: ActionOutcome) -> None: ...
    def progress(self, key: str, label: str, done: float, total: float | None) -> None: ...
    def message(self, text: str) -> None: ...


class NullSink:
    """Ignores everything."""

    def action_started(self, action: Action) -> None:
        pass

    def action_finished(self, action: Action, outcome: ActionOutcome) -> None:
        pass

    def progress(self, key: str, label: str, done: float, total: float | None) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class LogSink:
    """Writes to the ``tunekeeper.reconcile`` logger (capital first, past tense)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def action_started(self, action: Action) -> None:
        self._log.debug("Started %s %s (%s)", action.kind.value, action.target, action.reason.value)

    def action_finished(self, action: Action, outcome: ActionOutcome) -> None:
        level = logging.WARNING if outcome.outcome in (Outcome.FAILED, Outcome.RETRY) else logging.INFO
        self._log.log(level, "Finished %s %s: %s%s", action.kind.value, action.target, outcome.outcome.value,
                      f" ({outcome.message})" if outcome.message else "")

    def progress(self, key: str, label: str, done: float, total: float | None) -> None:
        self._log.debug("Progressed %s: %s %s/%s", key, label, done, total if total is not None else "?")

    def message(self, text: str) -> None:
        self._log.info("%s", text)
