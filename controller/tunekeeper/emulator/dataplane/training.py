"""The training simulation: a pure function from a job's parameters and the clock to its state.

Nothing here runs in the background. A job stores its ``TrainingPlan`` (resolved
hyperparameters, dataset size, durations already divided by the emulator's speed, a
fingerprint of data + seed + hyperparameters) and its user actions (pauses, resumes, a
cancel). ``snapshot(...)`` computes, for any moment, the status, the events so far, the
checkpoints so far and the metrics; jobs.py writes that into the store when someone reads.
So jobs keep running across restarts, tests move time with ``clock.advance``, and the same
seed, data and hyperparameters always give the same curves.

Rules (documented in docs/emulator.md):

- "auto" hyperparameters: ``n_epochs`` = 3, raised for small files so that about 100 examples
  are seen (100 // examples, at most 25) and lowered so that at most 25,000 are (at least 1);
  ``batch_size`` = 0.2% of the examples, rounded, clamped to 1..32; ``learning_rate_multiplier``
  = 0.05 (batch <= 4), 0.1 (batch <= 16) or 0.2 (larger batches); DPO ``beta`` = 0.1.
- durations at speed 1: 60 s in the queue, 30 s of data validation, per epoch 60 s plus one
  second per 250 training tokens, 45 s to store the model; resuming a paused job takes 30 s.
- curves: the training loss falls exponentially toward a floor; the validation loss follows it
  until the model starts to memorise: after about 4 epochs at the "auto" learning rate, sooner
  when the learning rate is higher than "auto" for that batch size. Beyond that point it turns
  up. Token accuracy mirrors the loss. Noise shrinks with larger batches.
- a checkpoint at the end of every epoch; only the last three are kept.

This module must not touch the store, the network or the real clock.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

QUEUE_SECONDS = 60.0
VALIDATE_SECONDS = 30.0
EPOCH_BASE_SECONDS = 60.0
TOKENS_PER_SECOND = 250.0
FINALIZE_SECONDS = 45.0
RESUME_SECONDS = 30.0
KEPT_CHECKPOINTS = 3
MAX_METRIC_EVENTS = 1000

# The csv columns, exactly as Azure documents them.
RESULTS_COLUMNS = (
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "validation_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)

DEFAULT_BETA = 0.1


# -- hyperparameters ---------------------------------------------------------------------------
def auto_n_epochs(examples: int) -> int:
    n = 3
    if examples * n < 100:
        n = min(25, 100 // max(examples, 1))  # the same rule as ``tunekeeper validate`` estimates with
    elif examples * n > 25_000:
        n = max(1, 25_000 // examples)
    return n


def auto_batch_size(examples: int) -> int:
    return max(1, min(32, round(examples * 0.002)))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    if batch_size <= 4:
        return 0.05
    if batch_size <= 16:
        return 0.1
    return 0.2


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """Everything the simulation needs; stored with the job (``_plan``) so restarts agree."""

    method: str  # "supervised" | "dpo"
    examples: int  # training examples
    tokens: int  # training tokens per epoch
    has_validation: bool
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    beta: float | None  # DPO only
    fingerprint: str  # hex digest of data + seed + hyperparameters + model
    failure: str | None  # why the job fails once it starts (bad data for this method/model)
    queue_s: float  # durations in clock seconds (already divided by speed)
    validate_s: float
    epoch_s: float
    finalize_s: float
    resume_s: float

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.examples / self.batch_size))

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.n_epochs

    @property
    def step_s(self) -> float:
        return self.epoch_s / self.steps_per_epoch

    @property
    def training_end(self) -> float:
        """Active seconds from creation until the last step is done."""
        return self.queue_s + self.validate_s + self.n_epochs * self.epoch_s

    @property
    def end(self) -> float:
        """Active seconds from creation until the job succeeds."""
        return self.training_end + self.finalize_s

    @property
    def failure_at(self) -> float:
        return self.queue_s + self.validate_s

    def step_done_at(self, step: int) -> float:
        return self.queue_s + self.validate_s + step * self.step_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingPlan:
        return cls(**data)


def make_plan(
    *,
    method: str,
    examples: int,
    tokens: int,
    has_validation: bool,
    n_epochs: int,
    batch_size: int,
    learning_rate_multiplier: float,
    beta: float | None,
    seed: int,
    model: str,
    data_digest: str,
    failure: str | None,
    speed: float,
) -> TrainingPlan:
    fingerprint = hashlib.sha256(
        "|".join(
            str(x) for x in (method, model, data_digest, seed, n_epochs, batch_size,
                             repr(float(learning_rate_multiplier)), beta)
        ).encode()
    ).hexdigest()
    epoch_seconds = EPOCH_BASE_SECONDS + tokens / TOKENS_PER_SECOND
    return TrainingPlan(
        method=method,
        examples=examples,
        tokens=tokens,
        has_validation=has_validation,
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=float(learning_rate_multiplier),
        beta=beta,
        fingerprint=fingerprint,
        failure=failure,
        queue_s=QUEUE_SECONDS / speed,
        validate_s=VALIDATE_SECONDS / speed,
        epoch_s=epoch_seconds / speed,
        finalize_s=FINALIZE_SECONDS / speed,
        resume_s=RESUME_SECONDS / speed,
    )


# -- curves ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepMetrics:
    step: int
    train_loss: float
    train_mean_token_accuracy: float
    valid_loss: float | None
    valid_mean_token_accuracy: float | None
    full_valid_loss: float | None  # evaluated on the whole validation set at epoch ends only
    full_valid_mean_token_accuracy: float | None

    def checkpoint_metrics(self) -> dict[str, float]:
        metrics = {"step": float(self.step), "train_loss": self.train_loss,
                   "train_mean_token_accuracy": self.train_mean_token_accuracy}
        for name in ("valid_loss", "valid_mean_token_accuracy", "full_valid_loss",
                     "full_valid_mean_token_accuracy"):
            value = getattr(self, name)
            if value is not None:
                metrics[name] = value
        return metrics

    def event_data(self, total_steps: int) -> dict[str, Any]:
        data: dict[str, Any] = {"step": self.step, "total_steps": total_steps, "train_loss": self.train_loss,
                                "train_mean_token_accuracy": self.train_mean_token_accuracy}
        if self.valid_loss is not None:
            data["valid_loss"] = self.valid_loss
            data["valid_mean_token_accuracy"] = self.valid_mean_token_accuracy
        if self.full_valid_loss is not None:
            data["full_valid_loss"] = self.full_valid_loss
            data["full_valid_mean_token_accuracy"] = self.full_valid_mean_token_accuracy
        return data


def _accuracy(loss: float) -> float:
    return math.exp(-0.45 * loss)


@functools.lru_cache(maxsize=64)
def curve(plan: TrainingPlan) -> tuple[StepMetrics, ...]:
    """Metrics for every step, deterministic from the plan's fingerprint."""
    rng = random.Random(int(plan.fingerprint[:16], 16))
    if plan.method == "dpo":
        start, floor = math.log(2.0), 0.12 + 0.15 * rng.random()
    else:
        start, floor = 1.6 + 1.2 * rng.random(), 0.15 + 0.35 * rng.random()
    valid_floor = floor + 0.08 + 0.2 * rng.random()
    pressure = plan.learning_rate_multiplier / auto_learning_rate_multiplier(plan.batch_size)
    boost = 1.0 + math.log(pressure) if pressure >= 1.0 else math.sqrt(pressure)
    decay = 1.5 * boost  # per epoch
    memorise_after = (4.0 + 0.5 * auto_n_epochs(plan.examples)) / max(boost, 0.25)
    overfit = 0.05 * max(boost, 0.5)
    noise = (0.04 + 0.05 * max(0.0, pressure - 1.0) ** 0.5) / math.sqrt(plan.batch_size) + 0.01
    spe = plan.steps_per_epoch

    def clean_valid(epoch: float) -> float:
        value = valid_floor + (start - valid_floor) * math.exp(-decay * epoch)
        late = max(0.0, epoch - memorise_after)
        return value + overfit * late * math.sqrt(late)

    rows = []
    for step in range(1, plan.total_steps + 1):
        epoch = step / spe
        train_clean = floor * (1.0 - 0.4 * (1.0 - math.exp(-0.25 * epoch))) + (start - floor) * math.exp(
            -decay * epoch
        )
        train = max(0.005, train_clean * (1.0 + rng.gauss(0.0, noise)))
        train_acc = min(0.999, max(0.0, _accuracy(train) + rng.gauss(0.0, 0.01)))
        valid = valid_acc = full = full_acc = None
        if plan.has_validation:
            v = clean_valid(epoch)
            valid = max(0.005, v * (1.0 + rng.gauss(0.0, noise * 1.5)))
            valid_acc = min(0.999, max(0.0, _accuracy(valid) + rng.gauss(0.0, 0.015)))
            if step % spe == 0:
                full = v
                full_acc = _accuracy(v)
        rows.append(StepMetrics(
            step=step,
            train_loss=round(train, 5),
            train_mean_token_accuracy=round(train_acc, 5),
            valid_loss=None if valid is None else round(valid, 5),
            valid_mean_token_accuracy=None if valid_acc is None else round(valid_acc, 5),
            full_valid_loss=None if full is None else round(full, 5),
            full_valid_mean_token_accuracy=None if full_acc is None else round(full_acc, 5),
        ))
    return tuple(rows)


def results_csv(plan: TrainingPlan) -> bytes:
    lines = [",".join(RESULTS_COLUMNS)]
    for row in curve(plan):
        cells = [row.step, row.train_loss, row.train_mean_token_accuracy, row.valid_loss,
                 row.valid_mean_token_accuracy, row.full_valid_loss, row.full_valid_mean_token_accuracy]
        lines.append(",".join("" if c is None else str(c) for c in cells))
    return ("\n".join(lines) + "\n").encode()


# -- the timeline ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Actions:
    """What happened to a job from outside: pause/resume pairs (wall clock times), a cancel, and
    a failure injected by a test (``Emulator.fail_job``)."""

    created: float
    pauses: tuple[tuple[float, float | None], ...] = ()  # (paused at, resumed at or None)
    cancelled_at: float | None = None
    failed_at: float | None = None  # injected failure
    failure: str | None = None  # its message


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # wall-clock (emulated) seconds
    key: str  # stable per job: feeds the event id
    level: str
    type: str
    message: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    epoch: int
    step: int
    at: float
    metrics: dict[str, float]


@dataclass(frozen=True, slots=True)
class Snapshot:
    status: str
    finished_at: float | None
    estimated_finish: float | None
    events: tuple[Event, ...]
    checkpoints: tuple[Checkpoint, ...] = field(default=())  # kept ones only, oldest first
    succeeded_at: float | None = None
    failure: str | None = None  # why it failed, when status is "failed"


class _Timeline:
    """Maps "active" seconds (time the job actually worked) to wall-clock seconds and back."""

    def __init__(self, plan: TrainingPlan, actions: Actions) -> None:
        self.created = actions.created
        # Inactive wall intervals: from the pause until resuming has finished.
        self.gaps: list[tuple[float, float]] = []
        for paused_at, resumed_at in actions.pauses:
            end = math.inf if resumed_at is None else resumed_at + plan.resume_s
            self.gaps.append((paused_at, end))

    def active(self, wall: float) -> float:
        elapsed = wall - self.created
        for start, end in self.gaps:
            if wall > start:
                elapsed -= min(wall, end) - start
        return elapsed

    def wall(self, active: float) -> float:
        wall = self.created + active
        for start, end in sorted(self.gaps):
            if start < wall:
                wall += end - start
        return wall


def snapshot(plan: TrainingPlan, actions: Actions, now: float, fine_tuned_model: str,
             checkpoint_name: str) -> Snapshot:
    """The job's state at ``now``. ``checkpoint_name`` has a ``{step}`` placeholder."""
    line = _Timeline(plan, actions)
    stop = min(t for t in (now, actions.cancelled_at, actions.failed_at) if t is not None)
    active = line.active(stop)
    events: list[Event] = [Event(actions.created, "enqueued", "info", "message",
                                 "Job enqueued. Waiting for jobs ahead to complete.")]

    def at(offset: float) -> float | None:
        """Wall time of an active offset, if it has happened by ``stop``."""
        if offset > active:
            return None
        return line.wall(offset)

    started = at(plan.queue_s)
    if started is not None:
        events.append(Event(started, "started", "info", "message", "Job started."))
        validated = at(plan.queue_s + plan.validate_s)
        if validated is not None and plan.failure is None:
            events.append(Event(validated, "validated", "info", "message", "Training file validated."))

    for index, (paused_at, resumed_at) in enumerate(actions.pauses):
        if paused_at <= stop:
            events.append(Event(paused_at, f"paused-{index}", "info", "message", "Job paused."))
        if resumed_at is not None and resumed_at <= stop:
            events.append(Event(resumed_at, f"resumed-{index}", "info", "message", "Job resumed."))

    checkpoints: list[Checkpoint] = []
    failed_at = succeeded_at = None
    if plan.failure is not None:
        failed_at = at(plan.failure_at)
        if failed_at is not None:
            events.append(Event(failed_at, "failed", "error", "message", f"Job failed. {plan.failure}"))
    else:
        rows = curve(plan)
        stride = max(1, math.ceil(plan.total_steps / MAX_METRIC_EVENTS))
        spe = plan.steps_per_epoch
        for row in rows:
            done = at(plan.step_done_at(row.step))
            if done is None:
                break
            if row.step % stride == 0 or row.step == plan.total_steps or row.step % spe == 0:
                message = f"Step {row.step}/{plan.total_steps}: training loss={row.train_loss:.4f}"
                if row.valid_loss is not None:
                    message += f", validation loss={row.valid_loss:.4f}"
                events.append(Event(done, f"step-{row.step}", "info", "metrics", message,
                                    row.event_data(plan.total_steps)))
            if row.step % spe == 0:
                checkpoints.append(Checkpoint(row.step // spe, row.step, done, row.checkpoint_metrics()))
                events.append(Event(done, f"checkpoint-{row.step}", "info", "message",
                                    f"Checkpoint created at step {row.step} "
                                    f"({checkpoint_name.format(step=row.step)})."))
        succeeded_at = at(plan.end)
        if succeeded_at is not None:
            events.append(Event(succeeded_at, "model", "info", "message",
                                f"New fine-tuned model created: {fine_tuned_model}"))
            events.append(Event(succeeded_at, "succeeded", "info", "message", "Job succeeded."))

    status: str
    finished_at: float | None = None
    estimated: float | None = None
    failure = plan.failure if failed_at is not None else None
    cancelled = actions.cancelled_at is not None and now >= actions.cancelled_at
    injected = actions.failed_at is not None and now >= actions.failed_at
    if failed_at is None and succeeded_at is None and injected and not (
            cancelled and actions.cancelled_at is not None and actions.failed_at is not None
            and actions.cancelled_at <= actions.failed_at):
        failed_at, failure = actions.failed_at, actions.failure or "The job failed."
        events.append(Event(failed_at or now, "failed", "error", "message", f"Job failed. {failure}"))
    if cancelled and failed_at is None and succeeded_at is None and actions.cancelled_at is not None:
        status, finished_at = "cancelled", actions.cancelled_at
        events.append(Event(actions.cancelled_at, "cancelled", "info", "message", "Job cancelled."))
    elif failed_at is not None:
        status, finished_at = "failed", failed_at
    elif succeeded_at is not None:
        status, finished_at = "succeeded", succeeded_at
    else:
        status = _running_status(plan, actions, line, now, active)
        if status != "paused":
            estimated = now + (plan.end - active) + _remaining_gap(line, now)
    events.sort(key=lambda e: e.at)
    return Snapshot(
        status=status,
        finished_at=finished_at,
        estimated_finish=estimated,
        events=tuple(events),
        checkpoints=tuple(checkpoints[-KEPT_CHECKPOINTS:]),
        succeeded_at=succeeded_at,
        failure=failure,
    )


def _running_status(plan: TrainingPlan, actions: Actions, line: _Timeline, now: float, active: float) -> str:
    for paused_at, resumed_at in actions.pauses:
        if paused_at <= now and (resumed_at is None or now < resumed_at):
            return "paused"
        if resumed_at is not None and resumed_at <= now < resumed_at + plan.resume_s:
            return "resuming"
    return "pending" if active < plan.queue_s else "running"


def _remaining_gap(line: _Timeline, now: float) -> float:
    return sum(end - max(start, now) for start, end in line.gaps if end > now and end != math.inf)
