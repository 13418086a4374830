"""Terminal rendering for the reconcile commands: progress bars while applying, status tables.

``apply`` passes a ``ProgressEvents`` to the core as its ``EventSink``; it draws one rich
progress bar per thing that moves (upload bytes, job steps or epochs, ARM provisioning) on
stderr and logs each finished action as a line. ``status`` renders its rows with
``status_table``. Errors and diagnostics are rendered by ``print_error``. Nothing here decides
anything; it only draws what the core reports.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import TunekeeperError
from tunekeeper.reconcile.events import ActionOutcome, Outcome
from tunekeeper.reconcile.model import Action


def stderr_console() -> Console:
    """Diagnostics and progress go to stderr; no colour when NO_COLOR is set or stderr is not a tty."""
    return Console(stderr=True, highlight=False, no_color=bool(os.environ.get("NO_COLOR")))


def stdout_console() -> Console:
    return Console(highlight=False, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=True)


# -- errors ------------------------------------------------------------------------------------
def print_diagnostics(console: Console, diagnostics: Iterable[Diagnostic]) -> tuple[int, int]:
    """Each diagnostic as ``path:line:col: severity: message`` plus its hint; returns (errors, warnings)."""
    errors = warnings = 0
    for d in sorted(diagnostics):
        style = "red" if d.severity == "error" else "yellow"
        head, _, rest = d.render().partition("\n")
        console.print(f"[{style}]{escape(head)}[/]")
        if rest:
            console.print(escape(rest), style="dim")
        if d.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def print_error(console: Console, error: TunekeeperError) -> None:
    """A TunekeeperError as the user should see it: every diagnostic, or the message, then the hint."""
    diagnostics: Sequence[Diagnostic] = getattr(error, "diagnostics", ())
    if diagnostics:
        errors, _ = print_diagnostics(console, diagnostics)
        console.print(f"[red]{errors} error(s).[/] Nothing was sent.")
    else:
        console.print(f"[red]error:[/] {escape(error.message)}")
    if error.hint:
        console.print(f"  hint: {escape(error.hint)}", style="dim")


# -- progress (an EventSink) -----------------------------------------------------------------------
def describe(action: Action) -> str:
    """``+ create_job FineTuneJob/clippy``."""
    return f"{action.kind.symbol} {action.kind.value} {action.target}"


_MARKS = {
    Outcome.DONE: "[green]✓[/]",
    Outcome.DEFERRED: "[cyan]…[/]",
    Outcome.RETRY: "[yellow]↻[/]",
    Outcome.FAILED: "[red]✗[/]",
    Outcome.SKIPPED: "[dim]-[/]",
}


class ProgressEvents:
    """EventSink for ``apply``: rich progress bars on stderr, one line per finished action.

    Thread-safe (rich's Progress is); the core may report from several tasks at once. Used as a
    context manager so the live display is always torn down, even on Ctrl-C. Waits that are
    merely deferred again are not repeated line after line: their progress bar says it all.
    """

    def __init__(self, console: Console | None = None, *, bars: bool = True) -> None:
        self.console = console or stderr_console()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not bars,
        )
        self._tasks: dict[str, TaskID] = {}
        self._said: set[tuple[str, str]] = set()  # (action, outcome) lines already printed
        self._lock = threading.Lock()
        self.finished: list[tuple[Action, ActionOutcome]] = []  # in the order they finished

    def __enter__(self) -> ProgressEvents:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    # EventSink
    def action_started(self, action: Action) -> None:
        return None  # progress() draws what moves; the finished line says what happened

    def action_finished(self, action: Action, outcome: ActionOutcome) -> None:
        self.finished.append((action, outcome))
        text = describe(action)
        with self._lock:
            key = (text, outcome.outcome.value + outcome.message)
            if not action.kind.changes and outcome.outcome in (Outcome.DEFERRED, Outcome.SKIPPED):
                return
            if key in self._said and outcome.outcome != Outcome.DONE:
                return
            self._said.add(key)
        mark = _MARKS.get(outcome.outcome, "")
        detail = f"  [dim]{escape(outcome.message)}[/]" if outcome.message else ""
        self._progress.console.print(f"{mark} {escape(text)}{detail}")

    def progress(self, key: str, label: str, done: float, total: float | None) -> None:
        shown_total = float(total) if total else None
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                self._tasks[key] = self._progress.add_task(label, total=shown_total, completed=float(done),
                                                           unit=_unit(key))
                return
        self._progress.update(task, description=label, completed=float(done), total=shown_total)

    def message(self, text: str) -> None:
        self._progress.console.print(escape(text), style="dim")


def _unit(key: str) -> str:
    lowered = key.lower()
    if "upload" in lowered or lowered.startswith("file"):
        return "bytes"
    if "job" in lowered:
        return "steps"
    return ""


# -- status ------------------------------------------------------------------------------------------
def status_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per resource: kind/name, readiness, what it is (job, model, deployment) and metrics."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("RESOURCE", "READY", "REASON", "DETAILS"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[escape(c) for c in status_cells(row)])
    return table


def status_cells(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The four cells of one status row (also used by the plain-text tests)."""
    name = f"{row.get('kind', '?')}/{row.get('name', '?')}"
    ready = _condition(row, "Ready")
    ready_text = ready.get("status", "Unknown") if ready else str(row.get("phase", "Unknown"))
    reason = ready.get("reason", "") if ready else ""
    return name, str(ready_text), str(reason), "\n".join(detail_lines(row))


def _condition(row: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in row.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def detail_lines(row: Mapping[str, Any]) -> list[str]:
    """Human lines for the details cell, from whatever the status row carries."""
    lines: list[str] = []
    for key, label in (("phase", "phase"), ("job_id", "job"), ("job_status", "job status"),
                       ("fine_tuned_model", "model"), ("model", "model"), ("provisioning_state", "provisioning"),
                       ("deployment_state", "state"), ("sku", "sku"), ("capacity", "capacity")):
        value = row.get(key)
        if value not in (None, "", [], {}) and not isinstance(value, Mapping):
            lines.append(f"{label}: {value}")
    checkpoints = row.get("checkpoints") or ()
    if checkpoints:
        names = [str(c.get("id", c.get("model", c))) if isinstance(c, Mapping) else str(c) for c in checkpoints]
        lines.append(f"checkpoints: {len(names)} ({', '.join(names[-3:])})")
    metrics = row.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        final = metrics.get("final", metrics)
        if isinstance(final, Mapping):
            shown = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(final.items())]
            lines.append("metrics: " + ", ".join(shown))
    ready = _condition(row, "Ready")
    if ready.get("message"):
        lines.append(str(ready["message"]))
    return lines
