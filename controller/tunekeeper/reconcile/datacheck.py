"""The dataset checks that run before anything is sent: every local file a job would upload, and
every eval gate file a deployment would be judged by.

Called by the CLI (``plan``, ``apply``) and the operator before ``converge``: a bad line in a
training file must never cost an upload. The same rules as ``tunekeeper validate`` (method,
base model through ``fromJob`` chains and, for training files, epochs); each combination is
checked once even when jobs share a file. Imported files (https URLs) are the service's to check.
Reads local files only; sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunekeeper.datasets import DatasetReport, validate_dataset, validate_eval_file
from tunekeeper.datasets._eval import EvalReport
from tunekeeper.diagnostics import Diagnostic, display_path
from tunekeeper.resources.specs import DataRef, Desired, FineTuneJobSpec, Method, base_model_of


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


@dataclass(frozen=True, slots=True)
class EvalCheck:
    """An eval gate's file, the Deployment that uses it and the training file its model learned from."""

    path: Path
    display: str
    deployment: str  # "Deployment/name"
    training: tuple[Path, str, str] | None  # (training file, display, "FineTuneJob/name"): supervised only

    @property
    def used_by(self) -> str:
        return f"{self.deployment} gates.evalFile"


def eval_checks(desired: Desired, *, display: Callable[[Path], str] = display_path) -> list[EvalCheck]:
    """One check per Deployment eval gate whose file is in the repository (the loader reports others)."""
    jobs = {j.name: j for j in desired.jobs}
    checks = []
    for dep in desired.deployments:
        ref = dep.gates.eval_file
        if ref is None or ref.path is None or not readable_inside(ref.path, desired.root):
            continue
        job = jobs.get(dep.model.from_job or "")
        training = None
        if job is not None and job.method is Method.SUPERVISED and job.training_file.path is not None \
                and readable_inside(job.training_file.path, desired.root):
            training = (job.training_file.path, display(job.training_file.path), f"FineTuneJob/{job.name}")
        checks.append(EvalCheck(ref.path, display(ref.path), f"Deployment/{dep.name}", training))
    return checks


def check_evals(
    desired: Desired, *, display: Callable[[Path], str] = display_path
) -> list[tuple[EvalCheck, EvalReport]]:
    """Every eval gate file checked (format, and system message against the training data).

    Called by ``tunekeeper validate``, by plan and apply before anything is sent, and by the
    operator before a run (``display`` as for ``check_datasets``).
    """
    return [
        (c, validate_eval_file(c.path, display_path=c.display, training=c.training))
        for c in eval_checks(desired, display=display)
    ]


def readable_inside(path: Path, root: Path) -> bool:
    """Only files the manifest checks accepted: inside the root (after symlinks) and present."""
    resolved = path.resolve()
    return resolved.is_file() and resolved.is_relative_to(root.resolve())
