"""A fine-tuning job's results.csv: parse it, summarise it, draw it.

Azure writes one results.csv per finished job (a result file of the job): one row per training
step with ``step``, ``train_loss``, ``train_mean_token_accuracy``, ``valid_loss``,
``valid_mean_token_accuracy`` (the documentation also spells it
``validation_mean_token_accuracy``), ``full_valid_loss`` and ``full_valid_mean_token_accuracy``.
Validation cells are empty on steps where the service did not evaluate.

``tunekeeper results`` calls ``parse_results`` on the downloaded bytes, then ``render_text``
(a compact terminal view) or ``render_png`` (two charts like the portal's: loss and token
accuracy, train against validation). This module does no I/O besides writing the PNG it is
asked for, and imports matplotlib (Agg canvas, no pyplot) only when drawing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunekeeper.errors import TunekeeperError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STEP = "step"
TRAIN_LOSS = "train_loss"
TRAIN_ACCURACY = "train_mean_token_accuracy"
VALID_LOSS = "valid_loss"
VALID_ACCURACY = "valid_mean_token_accuracy"
FULL_VALID_LOSS = "full_valid_loss"
FULL_VALID_ACCURACY = "full_valid_mean_token_accuracy"

METRICS: tuple[str, ...] = (
    TRAIN_LOSS, TRAIN_ACCURACY, VALID_LOSS, VALID_ACCURACY, FULL_VALID_LOSS, FULL_VALID_ACCURACY,
)
# Other spellings seen in Azure's documentation, mapped to the canonical column name.
_ALIASES: Mapping[str, str] = {"validation_mean_token_accuracy": VALID_ACCURACY}


def canonical_metric(name: str) -> str:
    """The name checkpoints and parsed results use for a metric (results.csv headers and gates
    may spell validation accuracy ``validation_mean_token_accuracy``)."""
    return _ALIASES.get(name, name)

_SPARK = "▁▂▃▄▅▆▇█"


class ResultsError(TunekeeperError):
    """A results.csv could not be read (wrong columns, a cell that is not a number)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One value of one metric at one training step."""

    step: int
    value: float


@dataclass(frozen=True, slots=True)
class Results:
    """The parsed results.csv of one job. ``rows`` keeps every metric per step (None = empty cell)."""

    steps: tuple[int, ...]
    # metric name -> one value per entry of ``steps`` (None where the cell was empty)
    columns: Mapping[str, tuple[float | None, ...]]

    def series(self, metric: str) -> tuple[Point, ...]:
        """The points of ``metric`` where it has a value, in step order."""
        values = self.columns.get(metric)
        if values is None:
            return ()
        return tuple(Point(step, v) for step, v in zip(self.steps, values, strict=True) if v is not None)

    def has(self, metric: str) -> bool:
        return bool(self.series(metric))

    def last(self, metric: str) -> Point | None:
        points = self.series(metric)
        return points[-1] if points else None

    def best(self, metric: str) -> Point | None:
        """Lowest point of a loss, highest point of an accuracy."""
        points = self.series(metric)
        if not points:
            return None
        if metric.endswith("accuracy"):
            return max(points, key=lambda p: (p.value, -p.step))
        return min(points, key=lambda p: (p.value, p.step))

    def summary(self) -> dict[str, object]:
        """Final and best value of each metric present, JSON-able (``results -o json``, status)."""
        out: dict[str, object] = {
            "steps": len(self.steps),
            "last_step": self.steps[-1] if self.steps else None,
        }
        for metric in METRICS:
            last, best = self.last(metric), self.best(metric)
            if last is None or best is None:
                continue
            out[metric] = {
                "final": last.value,
                "final_step": last.step,
                "best": best.value,
                "best_step": best.step,
            }
        return out


def parse_results(data: bytes | str, *, source: str = "results.csv") -> Results:
    """Parse results.csv text. Unknown columns are kept; a missing ``step`` column is an error."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ResultsError(
            f"{source} is empty", hint="the job may not have finished; check `tunekeeper status`"
        )
    names = [canonical_metric(h.strip()) for h in header]
    if STEP not in names:
        raise ResultsError(
            f"{source}:1: no 'step' column (columns: {', '.join(names) or 'none'})",
            hint="this does not look like a fine-tuning results file",
        )
    step_index = names.index(STEP)
    steps: list[int] = []
    columns: dict[str, list[float | None]] = {n: [] for n in names if n != STEP}
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise ResultsError(f"{source}:{line_no}: {len(row)} cells, the header has {len(names)}",
                               hint="the file is truncated or not a results.csv")
        steps.append(_step(row[step_index], source, line_no))
        for name, cell in zip(names, row, strict=True):
            if name != STEP:
                columns[name].append(_value(cell, source, line_no, name))
    return Results(steps=tuple(steps), columns={k: tuple(v) for k, v in columns.items()})


def _step(cell: str, source: str, line_no: int) -> int:
    value = _value(cell, source, line_no, STEP)
    if value is None:
        raise ResultsError(f"{source}:{line_no}: empty 'step'", hint="every row needs its step number")
    if not value.is_integer():
        raise ResultsError(f"{source}:{line_no}: step is {cell.strip()!r}, not a whole number")
    return int(value)


def _value(cell: str, source: str, line_no: int, column: str) -> float | None:
    """A metric cell: a float, or None when empty (no evaluation at this step) or NaN."""
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ResultsError(f"{source}:{line_no}: '{column}' is {text!r}, not a number",
                           hint="the file is not a fine-tuning results.csv") from None
    return None if math.isnan(value) else value


# -- terminal view ---------------------------------------------------------------------------
def sparkline(values: Sequence[float], width: int = 40) -> str:
    """Values resampled to ``width`` buckets (mean per bucket), drawn with block characters."""
    if not values:
        return ""
    if len(values) > width:
        buckets: list[float] = []
        for i in range(width):
            lo = i * len(values) // width
            hi = max(lo + 1, (i + 1) * len(values) // width)
            chunk = values[lo:hi]
            buckets.append(sum(chunk) / len(chunk))
        values = buckets
    lo_v, hi_v = min(values), max(values)
    span = hi_v - lo_v
    if span == 0:
        return _SPARK[len(_SPARK) // 2] * len(values)
    return "".join(_SPARK[min(len(_SPARK) - 1, int((v - lo_v) / span * len(_SPARK)))] for v in values)


def render_text(results: Results, *, title: str = "", width: int = 40) -> str:
    """A compact view: per metric a sparkline over the steps, its first, final and best values."""
    lines: list[str] = []
    if title:
        lines.append(title)
    if not results.steps:
        lines.append("results.csv has no rows yet.")
        return "\n".join(lines)
    lines.append(f"{len(results.steps)} steps ({results.steps[0]}..{results.steps[-1]})")
    label_width = max(len(m) for m in METRICS)
    for metric in METRICS:
        points = results.series(metric)
        if not points:
            continue
        best = results.best(metric)
        assert best is not None
        spark = sparkline([p.value for p in points], width)
        lines.append(
            f"{metric:<{label_width}}  {spark:<{width}}  {points[0].value:.4f} -> {points[-1].value:.4f}"
            f"  (best {best.value:.4f} @ step {best.step})"
        )
    return "\n".join(lines)


# -- PNG, like the portal's charts ---------------------------------------------------------------
def require_png_support() -> None:
    """Raise a clear error when matplotlib (the optional ``png`` extra) is not installed.

    Called before anything is fetched, so ``results --png`` fails at once rather than after the
    download.
    """
    try:
        import matplotlib  # noqa: F401 - only checking that it is there
    except ImportError:
        raise TunekeeperError(
            "--png needs matplotlib, which is an optional part of tunekeeper and is not installed",
            hint="pip install 'tunekeeper[png]' (make setup installs it), or leave out --png",
        ) from None


def build_figure(results: Results, *, title: str = "") -> Figure:
    """Two charts side by side, Loss and Token accuracy, train vs validation (Agg backend).

    Validation is drawn as a line where ``valid_*`` has values and ``full_valid_*`` (one
    evaluation over the whole validation set, usually per epoch) as markers. The caller owns
    the figure (``render_png`` saves and closes it).
    """
    require_png_support()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=100)  # not pyplot: no global figure registry, no GUI backend
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, train, valid, full, label in (
        (loss_ax, TRAIN_LOSS, VALID_LOSS, FULL_VALID_LOSS, "Loss"),
        (acc_ax, TRAIN_ACCURACY, VALID_ACCURACY, FULL_VALID_ACCURACY, "Token accuracy"),
    ):
        for metric, name in ((train, "train"), (valid, "validation")):
            points = results.series(metric)
            if points:
                ax.plot([p.step for p in points], [p.value for p in points], "-", label=name, linewidth=1.4)
        full_points = results.series(full)
        if full_points:
            ax.plot([p.step for p in full_points], [p.value for p in full_points], "o",
                    label="full validation", markersize=5)
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def render_png(results: Results, path: Path, *, title: str = "") -> Path:
    """Write the charts of ``build_figure`` to ``path`` as a PNG; returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = build_figure(results, title=title)
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
