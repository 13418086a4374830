"""Dataset validation: check JSONL training and validation files before a cent is spent.

Called by the manifest loader and ``tunekeeper validate`` (``validate_dataset``) and by the
emulator for uploaded files (``validate_bytes``); both apply the same rules (``_rules.RULES``,
codes TK-D001...). Formats: supervised chat (``{"messages": [...]}``), DPO (``input``,
``preferred_output``, ``non_preferred_output``) and reinforcement (``messages`` ending with a
user turn, plus the reference fields a grader reads).

Validation streams the file (flat memory), reports every problem as a sorted ``Diagnostic`` and
never raises for bad data. It uses no network: exact token counts use o200k_base converted
offline (``_tokens``). Heavy modules (the scanner's parsers, tiktoken, numpy) load only when
needed, so importing this package stays cheap. The rule table, with every code, message and
hint, is ``_rules.RULES``; the decisions the service's documentation leaves open are listed in
``_scan`` (blank lines, what counts as an example, oversized files, duplicates) and
``_examples`` / ``_report`` (token estimate and bound, image allowance, automatic epochs).
Eval files of a Deployment's eval gate (``validate_eval_file``) are checked by ``_eval`` (rules
TK-E0xx), including that their system message is the one the model was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunekeeper.datasets._report import DatasetReport, DatasetStats, auto_epochs

__all__ = ["METHODS", "DatasetReport", "DatasetStats", "auto_epochs", "auto_workers", "validate_bytes",
           "validate_dataset", "validate_eval_file"]

METHODS = ("supervised", "dpo", "reinforcement")

if TYPE_CHECKING:
    from collections.abc import Callable

    from tunekeeper.datasets._eval import EvalReport
    from tunekeeper.datasets._scan import Settings


def _settings(label: str, method: str, model: str | None, exact_tokens: bool) -> Settings:
    from tunekeeper.datasets._models import context_limit
    from tunekeeper.datasets._scan import Settings

    if method not in METHODS:
        raise ValueError(f"unknown fine-tuning method {method!r}; expected one of {', '.join(METHODS)}")
    limit, model_name = context_limit(model)
    return Settings(label=label, method=method, limit=limit, model=model_name, exact_tokens=exact_tokens)


def validate_dataset(
    path: Path,
    *,
    method: str = "supervised",
    display_path: str | None = None,
    model: str | None = None,
    epochs: int | None = None,
    workers: int | None = 1,
    exact_tokens: bool = False,
    meanwhile: Callable[[], object] | None = None,
) -> DatasetReport:
    """Check one JSONL file for ``method`` and report every problem and its figures.

    ``display_path`` is how diagnostics name the file (default: ``path`` as given). ``model`` (a
    base or fine-tuned model name) sets the context limit; ``epochs`` (None: the service's
    automatic choice, see ``auto_epochs``) sets the billed-token estimate. ``workers`` > 1 scans
    byte ranges of the file in that many processes with identical results; None picks the count
    from the file's size and the cores (``auto_workers``). ``exact_tokens``
    counts every example with o200k_base instead of estimating. ``meanwhile`` is work of the
    caller's that this process does while worker processes scan (when there are any): it then
    takes a smaller share of the file.

    Raises ValueError only for a bad argument (unknown method, workers or epochs below 1).
    """
    from tunekeeper.datasets import _scan

    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    label = display_path if display_path is not None else str(path)
    settings = _settings(label, method, model, exact_tokens)
    try:
        size = _scan.file_size(str(path))
        if not Path(path).is_file():
            raise IsADirectoryError(f"{label} is not a regular file")
        with open(path, "rb"):
            pass
    except OSError as exc:
        return _scan.unreadable(label, exc.strerror or str(exc), epochs)
    chosen = workers if workers is not None else auto_workers(size)
    return _scan.validate(str(path), size, settings, epochs=epochs, workers=chosen, meanwhile=meanwhile)


# A worker costs a fork, a pipe and the merge of its results: a few milliseconds, worth it only
# for some megabytes. While it scans, this process also loads what renders the report (the CLI's
# ``meanwhile``). Measured as whole ``tunekeeper validate`` processes on two cores: a 10 MB file
# 13% faster with two workers than with one, a 4 MB file the same.
BYTES_PER_WORKER = 4 * 1024 * 1024


def auto_workers(size: int, cores: int | None = None) -> int:
    """Processes to scan a file of ``size`` bytes with: one per ``BYTES_PER_WORKER``, at most one
    per core this process may run on."""
    import os

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, size // BYTES_PER_WORKER))


def validate_bytes(
    data: bytes,
    *,
    filename: str,
    method: str = "supervised",
    model: str | None = None,
) -> DatasetReport:
    """Check an in-memory file (an upload) by the same rules as ``validate_dataset``."""
    from tunekeeper.datasets import _scan

    settings = _settings(filename, method, model, False)
    return _scan.validate(_scan.memory_source(data), len(data), settings, epochs=None, workers=1)


def validate_eval_file(
    path: Path,
    *,
    display_path: str,
    training: tuple[Path, str, str] | None = None,
) -> EvalReport:
    """Check an eval file (``gates.evalFile``); see ``_eval`` for the format and the rules.

    ``training`` is (training file, its display path, "FineTuneJob/name") of the job whose model
    the gate judges: each eval example's system message must then be one it was trained with.
    """
    from tunekeeper.datasets import _eval

    trained = None
    if training is not None:
        try:
            trained = _eval.trained_prompts(*training)
        except OSError:
            trained = None  # the dataset checks report an unreadable training file
    return _eval.validate_eval(path, display_path=display_path, trained=trained)
