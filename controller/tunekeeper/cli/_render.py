"""Terminal rendering for the reconcile commands: progress bars while applying, status blocks.

``apply`` passes a ``ProgressEvents`` to the core as its ``EventSink``; it draws one rich
progress bar per thing that moves (upload bytes, job epochs, ARM provisioning) on
stderr and logs each finished action as a line. ``status`` renders its rows with
``status_view``. Errors and diagnostics are rendered by ``print_error``. Nothing here decides
anything; it only draws what the core reports.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.padding import Padding
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
from rich.text import Text

from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import TunekeeperError
from tunekeeper.reconcile.events import ActionOutcome, Outcome
from tunekeeper.reconcile.model import Action


def stderr_console() -> Console:
    """Diagnostics and progress go to stderr; no colour when NO_COLOR is set or stderr is not a tty."""
    return Console(stderr=True, highlight=False, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=True)


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


def print_error(console: Console, error: TunekeeperError, *, nothing_sent: bool = False) -> None:
    """A TunekeeperError as the user should see it: every diagnostic, or the message, then the hint."""
    diagnostics: Sequence[Diagnostic] = getattr(error, "diagnostics", ())
    if diagnostics:
        errors, _ = print_diagnostics(console, diagnostics)
        console.print(f"[red]{errors} error(s).[/]" + (" Nothing was sent." if nothing_sent else ""))
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

    def __enter__(self) -> Self:
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
                task = self._tasks[key] = self._progress.add_task(label, total=shown_total, unit=_unit(key))
        # update() (not add_task) marks a task finished when done reaches total, which stops its spinner
        self._progress.update(task, description=label, completed=float(done), total=shown_total)

    def message(self, text: str) -> None:
        self._progress.console.print(escape(text), style="dim")

    def settle(self) -> None:
        """Everything converged: fill every bar (a job that finished between two looks reports no
        last step)."""
        for task in self._progress.tasks:
            total = task.total or 1.0
            self._progress.update(task.id, total=total, completed=total)


def _unit(key: str) -> str:
    """The unit of a bar, by its resource key: ``File/...`` bytes uploaded, ``FineTuneJob/...`` epochs
    trained (``apply`` reports a job's progress in epochs); a deployment's bar is one step."""
    if key.startswith("File/"):
        return "bytes"
    return "epochs" if key.startswith("FineTuneJob/") else ""


# -- status ------------------------------------------------------------------------------------------
def status_view(rows: Sequence[Mapping[str, Any]]) -> Group:
    """One block per resource, ``kubectl describe`` style: a headline with the account, sync and
    health (Argo CD's two axes), Ready and its reason, then a key/value grid (job, model,
    checkpoints, metrics; or model, sku, provisioning) with why it is not synced or healthy."""
    blocks: list[RenderableType] = []
    for row in rows:
        ready = _condition(row, "Ready")
        flag = ready.get("status", "Unknown")
        colour = {"True": "green", "False": "yellow"}.get(str(flag), "dim")
        sync = _axis(row, "sync")
        health = _axis(row, "health")
        head = Text.assemble((f"{row.get('kind')}/{row.get('name')}", "bold"), "  ",
                             (f"[{row.get('account')}]", "dim"), "  ",
                             (str(sync.get("status", "Unknown")),
                              _SYNC_COLOURS.get(str(sync.get("status")), "dim")),
                             "  ",
                             (str(health.get("status", "Unknown")),
                              _HEALTH_COLOURS.get(str(health.get("status")), "dim")),
                             "  ", (f"Ready={flag}", colour), "  ", str(ready.get("reason", "")))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in status_details(row):
            grid.add_row(label, value)
        blocks.append(Padding(Group(head, Padding(grid, (0, 0, 0, 2))), (0, 0, 1, 0)))
    if not blocks:
        blocks.append(Text("No resources in these manifests."))
    return Group(*blocks)


_SYNC_COLOURS = {"Synced": "green", "OutOfSync": "yellow", "Drifted": "magenta"}
_HEALTH_COLOURS = {"Healthy": "green", "Progressing": "cyan", "Degraded": "red", "Suspended": "yellow",
                   "Missing": "yellow"}


def _axis(row: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = row.get(name)
    return value if isinstance(value, Mapping) else {}


def _condition(row: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in row.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


_SPLITS = (("train", "train_"), ("valid", "valid_"), ("full valid", "full_valid_"))


def _metric_lines(final: Mapping[str, Any], last_step: object) -> list[tuple[str, str]]:
    """``loss  train 0.2109, valid 0.5917, full valid 0.5363`` and the same for token accuracy."""
    lines: list[tuple[str, str]] = []
    for label, suffix in (("loss", "loss"), ("accuracy", "mean_token_accuracy")):
        parts = [f"{name} {final[prefix + suffix]:.4f}" for name, prefix in _SPLITS
                 if isinstance(final.get(prefix + suffix), (int, float))]
        if (
            suffix == "mean_token_accuracy"
            and isinstance(final.get("validation_mean_token_accuracy"), (int, float))
            and not any(p.startswith("valid ") for p in parts)
        ):
            parts.insert(1, f"valid {final['validation_mean_token_accuracy']:.4f}")
        if parts:
            lines.append(
                (label, ", ".join(parts) + (f" (step {last_step})" if last_step is not None else ""))
            )
    return lines


def status_details(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of one status row, as shown under its headline."""
    lines: list[tuple[str, str]] = []
    ready = _condition(row, "Ready")
    if row.get("kind") == "FineTuneJob":
        if row.get("job_id"):
            lines.append(("job", f"{row['job_id']} ({row.get('job_status') or 'unknown'})"))
        if row.get("fine_tuned_model"):
            lines.append(("model", str(row["fine_tuned_model"])))
        checkpoints = [c for c in row.get("checkpoints") or () if isinstance(c, Mapping)]
        if checkpoints:
            lines.append(
                (
                    "checkpoints",
                    ", ".join(
                        f"epoch {c['epoch']}" if c.get("epoch") is not None else f"step {c.get('step')}"
                        for c in checkpoints
                    )
                    + f" ({checkpoints[-1].get('id')} last)",
                )
            )
        metrics = row.get("metrics")
        if isinstance(metrics, Mapping) and isinstance(metrics.get("final"), Mapping):
            lines += _metric_lines(metrics["final"], metrics.get("last_step"))
    else:
        if row.get("model"):
            serving = f" ({row['serving']})" if row.get("serving") else ""
            version = f" version {row['version']}" if row.get("version") else ""
            lines.append(("model", f"{row['model']}{version}{serving}"))
        if row.get("sku"):
            lines.append(("sku", f"{row['sku']} x{row.get('capacity')}"))
        if row.get("provisioning_state"):
            state = row["provisioning_state"]
            if row.get("deployment_state"):
                state += f", {row['deployment_state']}"
            lines.append(("provisioning", str(state)))
        gates = _condition(row, "GatesPassed")
        if gates and gates.get("status") != "True":
            lines.append(("gates", str(gates.get("message", ""))))
    conditions = [
        c for c in row.get("conditions") or () if isinstance(c, Mapping) and c.get("type") != "Ready"
    ]
    if conditions:
        lines.append(("conditions", ", ".join(f"{c.get('type')}={c.get('status')}" for c in conditions)))
    sync = _axis(row, "sync")
    if sync.get("status") not in (None, "Synced") and sync.get("message"):
        lines.append(("sync", str(sync["message"])))
    health = _axis(row, "health")
    if health.get("status") not in (None, "Healthy", "Unknown") and health.get("message") \
            and health.get("message") != ready.get("message"):
        lines.append(("health", str(health["message"])))
    if row.get("error"):
        lines.append(("error", str(row["error"])))
    if ready.get("message") and ready.get("status") != "True":
        lines.append(("message", str(ready["message"])))
    if row.get("source"):
        lines.append(("manifest", str(row["source"])))
    return lines
