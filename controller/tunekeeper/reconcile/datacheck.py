"""The dataset checks that run before anything is sent: every local file a job would upload.

Called by the CLI (``plan``, ``apply``) and the operator before ``converge``: a bad line in a
training file must never cost an upload. The same rules as ``tunekeeper validate`` (method,
base model through ``fromJob`` chains and, for training files, epochs); each combination is
checked once even when jobs share a file. Imported files (https URLs) are the service's to check.
Reads local files only; sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunekeeper.datasets import DatasetReport, validate_dataset
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.resources.specs import DataRef, Desired, FineTuneJobSpec, base_model_of


def check_datasets(
    desired: Desired, *, display: Callable[[Path], str] = str,
    jobs: Callable[[FineTuneJobSpec], bool] = lambda _: True,
    on_report: Callable[[FineTuneJobSpec, DataRef, DatasetReport], None] | None = None,
) -> list[Diagnostic]:
    """Every problem (errors and warnings) in the local datasets of the jobs ``jobs`` selects.

    ``display`` names a file in the diagnostics (the CLI shows it relative to the working
    directory, the operator as the ConfigMap key or volume path the resource wrote).
    ``on_report`` is told each file's report (its figures feed the plan's cost estimates).
    """
    by_name = {j.name: j for j in desired.jobs}
    seen: set[tuple[Path, str, str | None, int | None]] = set()
    found: list[Diagnostic] = []
    for job in desired.jobs:
        if not jobs(job):
            continue
        model = base_model_of(job, by_name)
        for ref, epochs in ((job.training_file, job.hyperparameters.n_epochs), (job.validation_file, None)):
            if ref is None or ref.path is None:
                continue
            key = (ref.path, job.method.value, model, epochs)
            if key in seen:
                continue
            seen.add(key)
            report = validate_dataset(ref.path, method=job.method.value, display_path=display(ref.path),
                                      model=model, epochs=epochs)
            found.extend(report.diagnostics)
            if on_report is not None:
                on_report(job, ref, report)
    return found
