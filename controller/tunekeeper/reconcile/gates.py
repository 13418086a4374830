"""Which model a Deployment serves, and whether it may: checkpoint choice and metric gates.

Pure functions used by ``plan`` (to decide) and ``status`` (to explain). No I/O.

Checkpoint choice for ``fromJob`` deployments:

- ``final``: the job's ``fine_tuned_model``; its metrics are the last checkpoint's, completed
  with the final row of results.csv.
- ``best``: the retained checkpoint with the lowest ``full_valid_loss`` (``valid_loss`` when no
  checkpoint reports it; ties go to the later step).
- ``epoch N``: checkpoints are written at the end of each epoch, so with ``n_epochs`` E (as the
  service resolved it) and the last checkpoint at step S, one epoch is S / E steps and the
  checkpoint of epoch N is the one at step N * S / E. While the job trains, one epoch is the
  gap between the two newest checkpoints (see ``steps_per_epoch``). Azure keeps only the last
  three checkpoints: asking for an older epoch is an error, not a silent substitute.

A checkpoint is deployed by its id (``ftchkpt-...``), a fine-tuned model by its name, both with
version "1". Gates compare a metric of the chosen checkpoint to a threshold; a metric the
service did not report fails its gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tunekeeper.cloud.base import ObservedCheckpoint, ObservedJob
from tunekeeper.reconcile.model import MetricsSummary, Reason
from tunekeeper.reconcile.results import canonical_metric
from tunekeeper.resources.specs import MetricGate, ModelRef

FINE_TUNED_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Selection:
    """The model a Deployment should serve and the metrics it is judged by."""

    model_name: str
    model_version: str | None
    label: str  # "final", "best (step 30)", "epoch 2 (step 20)", or the base model
    metrics: Mapping[str, float]
    checkpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no model can be chosen (or deployed) now."""

    reason: Reason
    message: str


def select_model(
    ref: ModelRef, job: ObservedJob | None, checkpoints: Sequence[ObservedCheckpoint],
    results: MetricsSummary | None,
) -> Selection | Refusal | None:
    """The model ``ref`` names. None when it is not known yet (the job has not succeeded)."""
    if ref.base_model is not None:
        return Selection(ref.base_model, ref.version, ref.base_model, {})
    if job is None or job.status != "succeeded" or not job.fine_tuned_model:
        return None
    ordered = sorted(checkpoints, key=lambda c: c.step_number)
    if ref.checkpoint == "final":
        metrics: dict[str, float] = dict(results.final) if results else {}
        if ordered:
            metrics.update(ordered[-1].metrics)
        return Selection(job.fine_tuned_model, FINE_TUNED_VERSION, "final", metrics)
    if not ordered:
        return Refusal(
            Reason.CHECKPOINT_NOT_RETAINED,
            f"Job {job.id} reports no checkpoints, so checkpoint {ref.checkpoint!r} cannot be chosen.",
        )
    if ref.checkpoint == "best":
        key = "full_valid_loss" if any("full_valid_loss" in c.metrics for c in ordered) else "valid_loss"
        scored = [c for c in ordered if key in c.metrics]
        if not scored:
            return Refusal(Reason.CHECKPOINT_NOT_RETAINED,
                           f"No checkpoint of job {job.id} reports full_valid_loss or valid_loss; "
                           "add a validationFile to choose the best checkpoint.")
        best = min(scored, key=lambda c: (c.metrics[key], -c.step_number))
        return Selection(
            best.id, FINE_TUNED_VERSION, f"best (step {best.step_number})", dict(best.metrics), best.id
        )
    epoch = int(ref.checkpoint)
    chosen = checkpoint_of_epoch(job, ordered, epoch)
    if chosen is None:
        kept = ", ".join(str(e) for e in epochs_of(job, ordered).values())
        return Refusal(
            Reason.CHECKPOINT_NOT_RETAINED,
            f"The checkpoint of epoch {epoch} of job {job.id} is not retained (Azure keeps the last "
            f"three; retained epochs: {kept or 'none'}). Choose one of those or 'final'.",
        )
    return Selection(chosen.id, FINE_TUNED_VERSION, f"epoch {epoch} (step {chosen.step_number})",
                     dict(chosen.metrics), chosen.id)


def steps_per_epoch(job: ObservedJob, ordered: Sequence[ObservedCheckpoint]) -> float | None:
    """Training steps in one epoch, from the checkpoints held (written one per epoch).

    A finished job with a resolved n_epochs: the last step over n_epochs. Otherwise the gap
    between the two newest checkpoints (consecutive epochs), or, with a single checkpoint, its
    own step (it is the first epoch's: the service holds three once three epochs are done).
    """
    if not ordered:
        return None
    n_epochs = job.hyperparameters.get("n_epochs")
    if (
        job.status == "succeeded"
        and isinstance(n_epochs, int)
        and not isinstance(n_epochs, bool)
        and n_epochs > 0
    ):
        per_epoch = ordered[-1].step_number / n_epochs
    elif len(ordered) >= 2:
        per_epoch = float(ordered[-1].step_number - ordered[-2].step_number)
    else:
        per_epoch = float(ordered[0].step_number)
    return per_epoch if per_epoch > 0 else None


def epochs_of(job: ObservedJob, ordered: Sequence[ObservedCheckpoint]) -> dict[str, int]:
    """Checkpoint id -> epoch number, by the rule in the module docstring."""
    per_epoch = steps_per_epoch(job, ordered)
    if per_epoch is None:
        return {c.id: i + 1 for i, c in enumerate(ordered)}
    return {c.id: max(1, round(c.step_number / per_epoch)) for c in ordered}


def checkpoint_of_epoch(
    job: ObservedJob, ordered: Sequence[ObservedCheckpoint], epoch: int
) -> ObservedCheckpoint | None:
    epochs = epochs_of(job, ordered)
    for checkpoint in ordered:
        if epochs.get(checkpoint.id) == epoch:
            return checkpoint
    return None


def failed_gates(gates: Sequence[MetricGate], metrics: Mapping[str, float]) -> list[str]:
    """One sentence per failed gate (empty when all pass)."""
    failures: list[str] = []
    for gate in gates:
        value = metrics.get(canonical_metric(gate.metric))
        if value is None:
            failures.append(
                f"{gate.metric} was not reported (gate {gate.metric} {gate.op} {gate.threshold:g})"
            )
            continue
        ok = {"<": value < gate.threshold, "<=": value <= gate.threshold,
              ">": value > gate.threshold, ">=": value >= gate.threshold}[gate.op]
        if not ok:
            failures.append(f"{gate.metric} is {value:.4g}, the gate needs {gate.op} {gate.threshold:g}")
    return failures


def eval_key(deployment: str, model_name: str, eval_digest: str) -> str:
    """Identifies one eval gate run: the same model against the same eval set is judged once."""
    return f"{deployment}|{model_name}|{eval_digest[:16]}"


def candidate_name(deployment: str) -> str:
    """The temporary deployment an eval gate runs against (ARM names are at most 64 characters)."""
    suffix = "-tk-eval"
    return deployment[: 64 - len(suffix)] + suffix
