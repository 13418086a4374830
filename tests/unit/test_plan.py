"""plan() as tables: (desired, observed) -> expected actions. Pure: no sockets, no files read."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from tunekeeper.cloud.base import ObservedCheckpoint, ObservedDeployment, ObservedFile, ObservedJob
from tunekeeper.errors import PlanError, ReplacementNotAllowed
from tunekeeper.reconcile import ActionKind as K
from tunekeeper.reconcile import Known, Observation, Plan, Reason, markers, plan, render_plan
from tunekeeper.reconcile.model import MetricsSummary
from tunekeeper.resources.specs import (
    DataRef,
    DeletionPolicy,
    DeploymentSpec,
    Desired,
    FineTuneJobSpec,
    Gates,
    Hyperparameters,
    Method,
    MetricGate,
    ModelRef,
    Owner,
    Sku,
    SourceRef,
)

ROOT = Path("/repo")
TRAIN = ROOT / "data" / "train.jsonl"
VALID = ROOT / "data" / "valid.jsonl"
OTHER = ROOT / "data" / "other.jsonl"
DIGESTS = {TRAIN: "a" * 64, VALID: "b" * 64, OTHER: "c" * 64}
BASE = "gpt-4.1-2025-04-14"
OWNER = Owner("name:team-a", "stack team-a")
THEM = Owner("name:team-b", "stack team-b")
TRAIN_NAME = f"tk-{OWNER.id}-{'a' * 16}-train.jsonl"
VALID_NAME = f"tk-{OWNER.id}-{'b' * 16}-valid.jsonl"
OTHER_NAME = f"tk-{OWNER.id}-{'c' * 16}-other.jsonl"
LEGACY_TRAIN = f"tk-{'a' * 16}-train.jsonl"  # as version 0.1 named uploads (no owner)
LEGACY_VALID = f"tk-{'b' * 16}-valid.jsonl"


def job_spec(name: str = "bot", **kw: object) -> FineTuneJobSpec:
    values: dict[str, object] = {
        "name": name,
        "account": None,
        "base_model": BASE,
        "from_job": None,
        "method": Method.SUPERVISED,
        "hyperparameters": Hyperparameters(n_epochs=3),
        "training_file": DataRef(path=TRAIN, display="data/train.jsonl"),
        "validation_file": DataRef(path=VALID, display="data/valid.jsonl"),
        "source": SourceRef("manifests/bot.yaml", 3, 1),
    }
    values.update(kw)
    return FineTuneJobSpec(**values)  # type: ignore[arg-type]


def deployment_spec(name: str = "bot", **kw: object) -> DeploymentSpec:
    values: dict[str, object] = {"name": name, "account": None, "model": ModelRef(from_job="bot"),
                                     "source": SourceRef("manifests/bot.yaml", 20, 1)}
    values.update(kw)
    return DeploymentSpec(**values)  # type: ignore[arg-type]


def desired(jobs: Sequence[FineTuneJobSpec] = (), deployments: Sequence[DeploymentSpec] = (), *,
            complete: bool = False, owner: Owner = OWNER) -> Desired:
    """A run of stack ``owner``; ``complete`` when it loaded the whole stack (prune and gc allowed)."""
    return Desired(root=ROOT, jobs=tuple(jobs), deployments=tuple(deployments), files=("manifests/bot.yaml",),
                   owner=owner, complete=complete)


def file(name: str, status: str = "processed", id: str | None = None, created: int = 1) -> ObservedFile:
    return ObservedFile(
        id=id or f"file-{name.split('-')[-2][:8]}",
        filename=name,
        purpose="fine-tune",
        bytes=10,
        status=status,
        created_at=created,
        status_details="bad line 3" if status == "error" else None,
    )


def job_for(
    spec: FineTuneJobSpec,
    status: str = "succeeded",
    *,
    id: str = "ftjob-1",
    model: str = BASE,
    training: str | None = None,
    seed: int | None = None,
    created: int = 10,
    **kw: object,
) -> ObservedJob:
    """The job tunekeeper would have created for ``spec`` (the markers come from the same functions)."""
    base = spec.base_model or ""
    if spec.from_job:
        base = "job:" + fingerprint(job_spec(spec.from_job))
    fp = markers.job_fingerprint(
        spec,
        base=base,
        training_digest=DIGESTS[spec.training_file.path],  # type: ignore[index]
        validation_digest=DIGESTS[spec.validation_file.path] if spec.validation_file else None,
    )  # type: ignore[index]
    values: dict[str, object] = {
        "id": id,
        "status": status,
        "model": model,
        "training_file": training or f"file-{'a' * 8}",
        "created_at": created,
        "validation_file": f"file-{'b' * 8}" if spec.validation_file else None,
        "fine_tuned_model": f"{model}.ft-{id}-{markers.effective_suffix(spec)}"
        if status == "succeeded"
        else None,
        "suffix": markers.effective_suffix(spec),
        "seed": seed if seed is not None else markers.effective_seed(spec, fp),
        "method": spec.method.value,
        "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0},
    }
    values.update(kw)
    return ObservedJob(**values)  # type: ignore[arg-type]


def fingerprint(spec: FineTuneJobSpec) -> str:
    return markers.job_fingerprint(spec, base=spec.base_model or "", training_digest=DIGESTS[TRAIN],
                                   validation_digest=DIGESTS[VALID])


def deployment(
    name: str = "bot",
    *,
    model: str,
    sku: str = "Standard",
    capacity: int = 1,
    state: str = "Succeeded",
    tags: dict[str, str] | None = None,
    version: str = "1",
    owner: str | None = OWNER.id,
) -> ObservedDeployment:
    if tags is None:
        tags = markers.deployment_tags(
            name,
            spec_hash=markers.deployment_spec_hash(model, version, sku, capacity),
            deletion_policy=DeletionPolicy.DELETE,
            owner=owner,
            manifest="manifests/bot.yaml",
        )
    return ObservedDeployment(
        name=name,
        model_name=model,
        model_version=version,
        model_format="OpenAI",
        sku=sku,
        capacity=capacity,
        provisioning_state=state,
        tags=tags,
    )


def observed(files: Sequence[ObservedFile] = (), jobs: Sequence[ObservedJob] = (),
             deployments: Sequence[ObservedDeployment] = (), **kw: object) -> dict[str, Observation]:
    return {"embedded": Observation("embedded", tuple(files), tuple(jobs), tuple(deployments), **kw)}  # type: ignore[arg-type]


def rows(p: Plan) -> list[tuple[K, str, Reason]]:
    return [(a.kind, str(a.target), a.reason) for a in p.actions]


SPEC = job_spec()
READY_FILES = (file(TRAIN_NAME), file(VALID_NAME))
DONE = job_for(SPEC)
FT_MODEL = DONE.fine_tuned_model
assert FT_MODEL


# -- the table -----------------------------------------------------------------------------------------
CASES: list[tuple[str, Desired, dict[str, Observation], Known, list[tuple[K, str, Reason]]]] = [
    (
        "nothing exists: upload both files, then create job and deployment",
        desired([SPEC], [deployment_spec()]),
        observed(),
        Known(),
        [
            (K.UPLOAD_FILE, f"File/{TRAIN_NAME}", Reason.NOT_IN_ACCOUNT),
            (K.UPLOAD_FILE, f"File/{VALID_NAME}", Reason.NOT_IN_ACCOUNT),
            (K.CREATE_JOB, "FineTuneJob/bot", Reason.WAITING_FOR_FILES),
            (K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.WAITING_FOR_PARENT),
        ],
    ),
    (
        "files still processing: wait for them",
        desired([SPEC]),
        observed([file(TRAIN_NAME, "running"), file(VALID_NAME)]),
        Known(),
        [
            (K.WAIT_FILE, f"File/{TRAIN_NAME}", Reason.FILE_PROCESSING),
            (K.CREATE_JOB, "FineTuneJob/bot", Reason.WAITING_FOR_FILES),
        ],
    ),
    (
        "files processed (a crash after upload): adopt them, create the job",
        desired([SPEC]),
        observed(READY_FILES),
        Known(),
        [(K.CREATE_JOB, "FineTuneJob/bot", Reason.NOT_IN_ACCOUNT)],
    ),
    (
        "job running: follow it",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [job_for(SPEC, "running")]),
        Known(),
        [
            (K.WAIT_JOB, "FineTuneJob/bot", Reason.JOB_RUNNING),
            (K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.WAITING_FOR_PARENT),
        ],
    ),
    (
        "job adopted after a crash even when the data files were deleted since",
        desired([SPEC]),
        observed([], [DONE]),
        Known(),
        [],
    ),
    (
        "job succeeded: deploy its model",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE]),
        Known(),
        [(K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.NOT_IN_ACCOUNT)],
    ),
    (
        "deployment vanished after it was provisioned: drift",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE]),
        Known(deployments=frozenset({"bot"})),
        [(K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.DRIFT)],
    ),
    (
        "everything matches",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
        Known(),
        [],
    ),
    (
        "capacity changed in the manifest",
        desired([SPEC], [deployment_spec(capacity=5)]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
        Known(),
        [(K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.SPEC_CHANGED)],
    ),
    (
        "capacity changed outside tunekeeper",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE], [dataclasses.replace(deployment(model=FT_MODEL), capacity=9)]),
        Known(),
        [(K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.DRIFT)],
    ),
    (
        "deployment provisioning",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL, state="Creating")]),
        Known(),
        [(K.WAIT_DEPLOYMENT, "Deployment/bot", Reason.PROVISIONING)],
    ),
    (
        "deployment being deleted by someone else: wait, then recreate",
        desired([SPEC], [deployment_spec()]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL, state="Deleting")]),
        Known(),
        [(K.WAIT_DEPLOYMENT, "Deployment/bot", Reason.DRIFT)],
    ),
    (
        "this stack's deployment no longer declared is pruned; retained, legacy and others' are not",
        desired([SPEC], complete=True),
        observed(
            READY_FILES,
            [DONE],
            [
                deployment("old", model=FT_MODEL),
                deployment(
                    "kept",
                    model=FT_MODEL,
                    tags=markers.deployment_tags(
                        "kept", spec_hash="x", deletion_policy=DeletionPolicy.RETAIN, owner=OWNER.id
                    ),
                ),
                deployment("legacy", model=FT_MODEL, owner=None),
                deployment("team-b", model=FT_MODEL, owner=THEM.id),
                deployment("theirs", model=FT_MODEL, tags={"team": "search"}),
            ],
        ),
        Known(),
        [(K.DELETE_DEPLOYMENT, "Deployment/old", Reason.NO_LONGER_DECLARED)],
    ),
    (
        "a subset of the stack prunes nothing",
        desired([SPEC]),
        observed(READY_FILES, [DONE], [deployment("old", model=FT_MODEL)]),
        Known(),
        [],
    ),
    (
        "a spec change with allowReplacement: train again, the succeeded job is kept for rollback",
        desired(
            [job_spec(hyperparameters=Hyperparameters(n_epochs=4), allow_replacement=True)], complete=True
        ),
        observed(READY_FILES, [DONE]),
        Known(),
        [(K.CREATE_JOB, "FineTuneJob/bot", Reason.REQUIRES_NEW_TRAINING)],
    ),
    (
        "replacing a running job cancels it first",
        desired([job_spec(seed=7, allow_replacement=True)]),
        observed(READY_FILES, [job_for(SPEC, "running")]),
        Known(),
        [
            (K.CANCEL_JOB, "FineTuneJob/bot", Reason.REQUIRES_NEW_TRAINING),
            (K.CREATE_JOB, "FineTuneJob/bot", Reason.REQUIRES_NEW_TRAINING),
        ],
    ),
    (
        "the previous job failed: a spec change simply trains again (nothing paid for is lost)",
        desired([job_spec(seed=7)]),
        observed(READY_FILES, [job_for(SPEC, "failed")]),
        Known(),
        [(K.CREATE_JOB, "FineTuneJob/bot", Reason.SPEC_CHANGED)],
    ),
    (
        "previous job known from the state file even with another suffix",
        desired([job_spec(suffix="v2", allow_replacement=True)]),
        observed(READY_FILES, [DONE]),
        Known(jobs={"bot": "ftjob-1"}),
        [(K.CREATE_JOB, "FineTuneJob/bot", Reason.REQUIRES_NEW_TRAINING)],
    ),
    (
        "a create the service ran twice: the newer twin is cancelled, one training is enough",
        desired([SPEC]),
        observed(
            READY_FILES,
            [
                job_for(SPEC, "running", id="ftjob-1", created=10),
                job_for(SPEC, "running", id="ftjob-2", created=11),
            ],
        ),
        Known(),
        [
            (K.CANCEL_JOB, "FineTuneJob/bot", Reason.DUPLICATE),
            (K.WAIT_JOB, "FineTuneJob/bot", Reason.JOB_RUNNING),
        ],
    ),
    (
        "an upload the service ran twice: the unused copy is deleted",
        desired([SPEC]),
        observed([*READY_FILES, file(TRAIN_NAME, id="file-twin", created=5)], [DONE]),
        Known(),
        [(K.DELETE_FILE, f"File/{TRAIN_NAME}", Reason.DUPLICATE)],
    ),
    (
        "a job with our files but another seed is not ours to adopt",
        desired([job_spec(suffix="x")]),
        observed(READY_FILES, [job_for(job_spec(suffix="y"), seed=1)]),
        Known(),
        [(K.CREATE_JOB, "FineTuneJob/bot", Reason.NOT_IN_ACCOUNT)],
    ),
]


@pytest.mark.parametrize(("title", "want", "seen", "known", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan_table(title: str, want: Desired, seen: dict[str, Observation], known: Known,
                    expected: list[tuple[K, str, Reason]]) -> None:
    assert rows(plan(want, seen, digests=DIGESTS, known=known)) == expected


def test_identical_data_shared_by_two_jobs_is_uploaded_once() -> None:
    p = plan(desired([job_spec("a"), job_spec("b", validation_file=None)]), observed(), digests=DIGESTS)
    uploads = [a for a in p.actions if a.kind is K.UPLOAD_FILE]
    assert [str(a.target) for a in uploads] == [f"File/{TRAIN_NAME}", f"File/{VALID_NAME}"]


def test_failed_file_blocks_with_its_details() -> None:
    p = plan(desired([SPEC]), observed([file(TRAIN_NAME, "error"), file(VALID_NAME)]), digests=DIGESTS)
    p = plan(desired([SPEC], [deployment_spec()]), observed([file(TRAIN_NAME, "error"), file(VALID_NAME)]),
             digests=DIGESTS)
    assert p.actions == ()
    assert [(str(b.target), b.reason) for b in p.blocked] == [
        ("Deployment/bot", Reason.JOB_FAILED), (f"File/{TRAIN_NAME}", Reason.FILE_FAILED),
        ("FineTuneJob/bot", Reason.FILE_FAILED)]
    assert "bad line 3" in p.blocked[1].message


def test_failed_job_is_not_retried_and_blocks_its_deployment() -> None:
    failed = job_for(SPEC, "failed", error_code="invalidTrainingFile", error_message="The file is too small")
    p = plan(desired([SPEC], [deployment_spec()]), observed(READY_FILES, [failed]), digests=DIGESTS)
    assert p.actions == ()
    assert [(str(b.target), b.reason) for b in p.blocked] == [
        ("Deployment/bot", Reason.JOB_FAILED), ("FineTuneJob/bot", Reason.JOB_FAILED)]
    assert "The file is too small" in p.blocked[1].message


def test_replacement_refused_names_manifest_and_fields() -> None:
    changed = job_spec(
        hyperparameters=Hyperparameters(n_epochs=4), training_file=DataRef(path=OTHER, display="o")
    )
    with pytest.raises(ReplacementNotAllowed) as info:
        plan(desired([changed]), observed(READY_FILES, [DONE]), digests=DIGESTS)
    text = info.value.message
    assert "manifests/bot.yaml:3:1" in text
    assert "spec.hyperparameters.n_epochs" in text and "spec.trainingFile" in text
    assert "new FineTuneJob" in (info.value.hint or "")


def test_from_job_waits_for_parent_then_trains_from_its_model() -> None:
    child = job_spec(
        "child", base_model=None, from_job="bot", training_file=DataRef(path=OTHER), validation_file=None
    )
    running = plan(desired([SPEC, child]), observed(READY_FILES, [job_for(SPEC, "running")]), digests=DIGESTS)
    create = next(a for a in running.actions if a.target.name == "child")
    assert (create.kind, create.reason, create.depth) == (K.CREATE_JOB, Reason.WAITING_FOR_PARENT, 1)
    assert running.actions[-1] is create  # deeper in the chain, later in the plan
    done = plan(desired([SPEC, child]), observed((*READY_FILES, file(OTHER_NAME)), [DONE]), digests=DIGESTS)
    create = next(a for a in done.actions if a.target.name == "child")
    assert create.reason is Reason.NOT_IN_ACCOUNT and create.after and create.after["model"] == FT_MODEL


def test_child_of_failed_parent_is_blocked() -> None:
    child = job_spec("child", base_model=None, from_job="bot", validation_file=None)
    p = plan(desired([SPEC, child]), observed(READY_FILES, [job_for(SPEC, "failed")]), digests=DIGESTS)
    assert [(str(b.target), b.reason) for b in p.blocked] == [
        ("FineTuneJob/bot", Reason.JOB_FAILED), ("FineTuneJob/child", Reason.JOB_FAILED)]


def ckpt(step: int, valid: float, full: float | None = None) -> ObservedCheckpoint:
    metrics = {"valid_loss": valid, "train_loss": 0.1, "valid_mean_token_accuracy": 1 - valid}
    if full is not None:
        metrics["full_valid_loss"] = full
    return ObservedCheckpoint(
        id=f"ftchkpt-{step}",
        job_id="ftjob-1",
        fine_tuned_model_checkpoint=f"m:ckpt-step-{step}",
        step_number=step,
        metrics=metrics,
        created_at=step,
    )


CHECKPOINTS = (ckpt(20, 0.5, 0.55), ckpt(30, 0.4, 0.60), ckpt(40, 0.45, 0.58))  # epochs 2, 3, 4 of 4
SPEC4 = job_spec(hyperparameters=Hyperparameters(n_epochs=4))
FOUR = job_for(SPEC4, hyperparameters={"n_epochs": 4})


@pytest.mark.parametrize(("checkpoint", "model"), [
    ("final", FOUR.fine_tuned_model), ("best", "ftchkpt-20"), (3, "ftchkpt-30"), (4, "ftchkpt-40"),
])
def test_checkpoint_choice(checkpoint: object, model: str) -> None:
    spec = deployment_spec(model=ModelRef(from_job="bot", checkpoint=checkpoint))  # type: ignore[arg-type]
    p = plan(desired([SPEC4], [spec]), observed(READY_FILES, [FOUR], checkpoints={"ftjob-1": CHECKPOINTS}),
             digests=DIGESTS)
    assert [(a.kind, a.after and a.after["model"]) for a in p.actions] == [(K.CREATE_DEPLOYMENT, model)]


def test_best_falls_back_to_valid_loss() -> None:
    plain = tuple(ckpt(s, v) for s, v in ((10, 0.3), (20, 0.2), (30, 0.25)))
    spec = deployment_spec(model=ModelRef(from_job="bot", checkpoint="best"))
    p = plan(
        desired([SPEC], [spec]),
        observed(READY_FILES, [DONE], checkpoints={"ftjob-1": plain}),
        digests=DIGESTS,
    )
    assert p.actions[0].after and p.actions[0].after["model"] == "ftchkpt-20"


def test_epoch_not_retained_is_blocked() -> None:
    spec = deployment_spec(model=ModelRef(from_job="bot", checkpoint=1))
    p = plan(desired([SPEC4], [spec]), observed(READY_FILES, [FOUR], checkpoints={"ftjob-1": CHECKPOINTS}),
             digests=DIGESTS)
    assert p.actions == () and p.blocked[0].reason is Reason.CHECKPOINT_NOT_RETAINED
    assert "epoch 1" in p.blocked[0].message and "2, 3, 4" in p.blocked[0].message


@pytest.mark.parametrize(("gate", "passes"), [
    (MetricGate("full_valid_loss", "<", 0.6), True),
    (MetricGate("full_valid_loss", "<", 0.5), False),
    (MetricGate("valid_mean_token_accuracy", ">=", 0.9), False),
    (MetricGate("no_such_metric", "<", 1.0), False),
])
def test_metric_gates_on_chosen_checkpoint(gate: MetricGate, passes: bool) -> None:
    spec = deployment_spec(model=ModelRef(from_job="bot", checkpoint="best"), gates=Gates(metrics=(gate,)))
    p = plan(desired([SPEC4], [spec]), observed(READY_FILES, [FOUR], checkpoints={"ftjob-1": CHECKPOINTS}),
             digests=DIGESTS)
    if passes:
        assert [a.kind for a in p.actions] == [K.CREATE_DEPLOYMENT]
    else:
        assert p.actions == () and [b.reason for b in p.blocked] == [Reason.GATE_FAILED]


def test_gate_failure_keeps_the_serving_model() -> None:
    old = deployment(model="older-model")
    spec = deployment_spec(gates=Gates(metrics=(MetricGate("full_valid_loss", "<", 0.1),)))
    p = plan(desired([SPEC], [spec]), observed(READY_FILES, [DONE], [old],
                                               results={"ftjob-1": MetricsSummary({"full_valid_loss": 0.5})}),
             digests=DIGESTS)
    assert p.actions == () and p.blocked[0].reason is Reason.GATE_FAILED


def test_unowned_deployment_with_declared_name_is_left_alone() -> None:
    theirs = deployment(model="gpt-4.1", tags={})
    p = plan(desired([SPEC], [deployment_spec()]), observed(READY_FILES, [DONE], [theirs]), digests=DIGESTS)
    assert p.actions == () and p.blocked[0].reason is Reason.NOT_OWNED


def test_base_model_deployment() -> None:
    spec = deployment_spec("plain", model=ModelRef(base_model="gpt-4.1-mini", version="2025-04-14"),
                           sku=Sku.GLOBAL_STANDARD, capacity=10)
    p = plan(desired([], [spec]), observed(), digests=DIGESTS)
    (action,) = p.actions
    assert action.kind is K.CREATE_DEPLOYMENT and action.after is not None
    assert {k: v for k, v in action.after.items() if k != "tags"} == {
        "model": "gpt-4.1-mini", "version": "2025-04-14", "sku": "GlobalStandard", "capacity": 10,
        "checkpoint": "gpt-4.1-mini"}
    assert action.after["tags"] == markers.deployment_tags(
        "plain", spec_hash=markers.deployment_spec_hash("gpt-4.1-mini", "2025-04-14", "GlobalStandard", 10),
        deletion_policy=DeletionPolicy.DELETE, owner=OWNER.id, manifest="manifests/bot.yaml")


def test_order_is_total_and_deterministic() -> None:
    jobs = [
        job_spec(f"j{i}", training_file=DataRef(path=ROOT / f"d{i}.jsonl"), validation_file=None)
        for i in range(6)
    ]
    deps = [deployment_spec(f"d{i}", model=ModelRef(from_job=f"j{i}")) for i in range(6)]
    digests = {ROOT / f"d{i}.jsonl": f"{i}" * 64 for i in range(6)}
    first = plan(desired(jobs, deps), observed(), digests=digests)
    for seed in range(5):
        rng = random.Random(seed)
        shuffled_jobs, shuffled_deps = jobs[:], deps[:]
        rng.shuffle(shuffled_jobs)
        rng.shuffle(shuffled_deps)
        again = plan(desired(shuffled_jobs, shuffled_deps), observed(), digests=digests)
        assert render_plan(again, "json") == render_plan(first, "json")
    stages = [a.target.kind for a in first.actions]
    assert stages == sorted(stages, key=["File", "FineTuneJob", "Deployment"].index)


def test_plan_is_pure_and_repeatable() -> None:
    seen = observed(READY_FILES, [job_for(SPEC, "running")])
    assert plan(desired([SPEC]), seen, digests=DIGESTS) == plan(desired([SPEC]), seen, digests=DIGESTS)


def test_unobserved_account_is_an_error() -> None:
    with pytest.raises(PlanError, match="not observed"):
        plan(desired([job_spec(account="prod")]), observed(), digests=DIGESTS)


def test_missing_digest_is_an_error() -> None:
    with pytest.raises(PlanError, match="no digest for data/train.jsonl") as info:
        plan(desired([SPEC]), observed(), digests={})
    assert "compute_digests" in (info.value.hint or "")


def test_fingerprint_moves_when_a_touched_object_changes() -> None:
    before = plan(
        desired([SPEC], [deployment_spec(capacity=5)]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
        digests=DIGESTS,
    )
    moved = plan(desired([SPEC], [deployment_spec(capacity=5)]),
                 observed(READY_FILES, [DONE], [deployment(model=FT_MODEL, capacity=2)]), digests=DIGESTS)
    progressed = plan(
        desired([SPEC], [deployment_spec(capacity=5)]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL, state="Updating")]),
        digests=DIGESTS,
    )
    assert before.observed_fingerprint != moved.observed_fingerprint
    assert before.observed_fingerprint == progressed.observed_fingerprint


def test_a_replaced_model_is_kept_then_collected_beyond_retention_once_nothing_serves_it() -> None:
    changed = job_spec(hyperparameters=Hyperparameters(n_epochs=4), allow_replacement=True, retain_previous=0)
    serving_old = deployment(model=FT_MODEL)
    start = plan(
        desired([changed], [deployment_spec()], complete=True),
        observed(READY_FILES, [DONE], [serving_old]),
        digests=DIGESTS,
    )
    assert rows(start) == [(K.CREATE_JOB, "FineTuneJob/bot", Reason.REQUIRES_NEW_TRAINING),
                           (K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.WAITING_FOR_PARENT)]
    assert render_plan(start).splitlines()[0].startswith("-/+ create_job")

    new = job_for(changed, id="ftjob-2", created=20, hyperparameters={"n_epochs": 4})
    assert new.fine_tuned_model
    training = plan(desired([changed], [deployment_spec()], complete=True),
                    observed(READY_FILES, [DONE, new], [serving_old]), digests=DIGESTS)
    assert rows(training) == [
        (K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.SPEC_CHANGED)
    ]  # old still serves
    moved = plan(
        desired([changed], [deployment_spec()], complete=True),
        observed(READY_FILES, [DONE, new], [deployment(model=new.fine_tuned_model)]),
        digests=DIGESTS,
    )
    assert [(a.kind, a.reason, a.last, a.before and a.before["job_id"]) for a in moved.actions] == [
        (K.DELETE_MODEL, Reason.BEYOND_RETENTION, True, "ftjob-1")]
    kept = plan(
        desired([dataclasses.replace(changed, retain_previous=1)], [deployment_spec()], complete=True),
        observed(READY_FILES, [DONE, new], [deployment(model=new.fine_tuned_model)]),
        digests=DIGESTS,
    )
    assert kept.actions == ()  # the default keeps the last 3 replaced models


def test_reverting_a_replacement_re_adopts_the_retained_model() -> None:
    changed = job_spec(hyperparameters=Hyperparameters(n_epochs=4), allow_replacement=True)
    new = job_for(changed, id="ftjob-2", created=20, hyperparameters={"n_epochs": 4})
    assert new.fine_tuned_model
    p = plan(desired([SPEC], [deployment_spec()], complete=True),
             observed(READY_FILES, [DONE, new], [deployment(model=new.fine_tuned_model)]), digests=DIGESTS)
    assert rows(p) == [(K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.ROLLBACK)]
    assert p.notes and "re-adopts job ftjob-1" in p.notes[0] and "no new training" in p.notes[0]


def test_pruning_follows_the_owners_inventory_not_the_files_read() -> None:
    elsewhere = deployment("other", model=FT_MODEL, tags=markers.deployment_tags(
        "other", spec_hash="x", deletion_policy=DeletionPolicy.DELETE, owner=OWNER.id,
        manifest="examples/other/app.yaml"))
    theirs = deployment(
        "gone",
        model=FT_MODEL,
        tags=markers.deployment_tags(
            "gone",
            spec_hash="x",
            deletion_policy=DeletionPolicy.DELETE,
            owner=THEM.id,
            manifest="manifests/bot.yaml",
        ),
    )
    legacy = deployment("legacy", model=FT_MODEL, owner=None)
    seen = observed(READY_FILES, [DONE], [elsewhere, theirs, legacy])
    assert rows(plan(desired([SPEC]), seen, digests=DIGESTS)) == []  # a subset run deletes nothing
    full = plan(desired([SPEC], complete=True), seen, digests=DIGESTS)
    assert rows(full) == [(K.DELETE_DEPLOYMENT, "Deployment/other", Reason.NO_LONGER_DECLARED)]
    assert any("Deployment legacy was created by tunekeeper 0.1" in w for w in full.warnings)
    assert [
        r
        for r in rows(plan(desired([SPEC], complete=True, owner=THEM), seen, digests=DIGESTS))
        if r[0] is K.DELETE_DEPLOYMENT
    ] == [(K.DELETE_DEPLOYMENT, "Deployment/gone", Reason.NO_LONGER_DECLARED)]


def test_a_rename_creates_before_it_prunes() -> None:
    renamed = deployment_spec("bot-2")
    p = plan(
        desired([SPEC], [renamed], complete=True),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
        digests=DIGESTS,
    )
    assert rows(p) == [(K.CREATE_DEPLOYMENT, "Deployment/bot-2", Reason.NOT_IN_ACCOUNT),
                       (K.DELETE_DEPLOYMENT, "Deployment/bot", Reason.NO_LONGER_DECLARED)]
    assert [a.last for a in p.actions] == [False, True]


def test_a_removed_fine_tune_job_is_collected_in_dependency_order() -> None:
    results = dataclasses.replace(DONE, result_files=("file-results",))
    seen = observed([*READY_FILES, file(OTHER_NAME)], [results], [deployment(model=FT_MODEL)])
    p = plan(desired([], complete=True), seen, digests=DIGESTS)
    assert rows(p) == [(K.DELETE_DEPLOYMENT, "Deployment/bot", Reason.NO_LONGER_DECLARED),
                       (K.DELETE_MODEL, "Model/ftjob-1", Reason.NO_LONGER_DECLARED),
                       (K.DELETE_FILE, f"File/{TRAIN_NAME}", Reason.UNUSED),
                       (K.DELETE_FILE, f"File/{VALID_NAME}", Reason.UNUSED),
                       (K.DELETE_FILE, f"File/{OTHER_NAME}", Reason.UNUSED)]
    assert p.actions[1].before and p.actions[1].before["result_files"] == ["file-results"]
    assert render_plan(p).endswith("Plan: 0 to create, 0 to change, 5 to delete.")


def test_garbage_collection_never_touches_what_is_used_or_not_ours() -> None:
    theirs_train = f"tk-{THEM.id}-{'a' * 16}-train.jsonl"
    their_job = job_for(SPEC, id="ftjob-9", training="file-theirs00")
    legacy_job = job_for(SPEC, id="ftjob-8", training="file-legacy0")
    running = job_for(job_spec("gone"), "running", id="ftjob-7", created=30)
    served_by_them = job_for(job_spec("old"), id="ftjob-6", created=5)
    seen = observed(
        [*READY_FILES, file(theirs_train, id="file-theirs00"), file(LEGACY_TRAIN, id="file-legacy0")],
        [their_job, legacy_job, running, served_by_them],
        [deployment("their-bot", model=served_by_them.fine_tuned_model or "", owner=THEM.id)])
    p = plan(desired([], complete=True), seen, digests=DIGESTS)
    # their file and job, the legacy file and job, the served model and the files live jobs name stay;
    # the running job of a removed resource is cancelled (to stop paying), then collected once stopped
    assert rows(p) == [(K.CANCEL_JOB, "Model/ftjob-7", Reason.NO_LONGER_DECLARED)]


def test_apply_replace_deletes_the_job_then_trains_again() -> None:
    failed = job_for(SPEC, "failed", error_message="diverged")
    p = plan(desired([SPEC]), observed(READY_FILES, [failed]), digests=DIGESTS, replace=frozenset({"bot"}))
    assert rows(p) == [(K.DELETE_MODEL, "FineTuneJob/bot", Reason.REPLACE_REQUESTED),
                       (K.CREATE_JOB, "FineTuneJob/bot", Reason.REPLACE_REQUESTED)]
    assert [a.last for a in p.actions] == [False, False]
    with pytest.raises(PlanError, match="serves a deployment"):
        plan(
            desired([SPEC], [deployment_spec()]),
            observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
            digests=DIGESTS,
            replace=frozenset({"bot"}),
        )
    with pytest.raises(PlanError, match="do not declare"):
        plan(desired([SPEC]), observed(READY_FILES, [DONE]), digests=DIGESTS, replace=frozenset({"bto"}))


def test_a_legacy_deployment_is_adopted_and_marked_and_legacy_files_are_not_uploaded_again() -> None:
    legacy_files = (file(LEGACY_TRAIN), file(LEGACY_VALID))
    p = plan(desired([SPEC], [deployment_spec()], complete=True),
             observed(legacy_files, [DONE], [deployment(model=FT_MODEL, owner=None)]), digests=DIGESTS)
    assert rows(p) == [(K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.ADOPTED)]
    tags = p.actions[0].after["tags"]  # type: ignore[index]
    assert tags[markers.OWNER_TAG] == OWNER.id  # type: ignore[index]
    fresh = plan(desired([job_spec(seed=5)]), observed(legacy_files), digests=DIGESTS)
    assert rows(fresh) == [(K.CREATE_JOB, "FineTuneJob/bot", Reason.NOT_IN_ACCOUNT)]
    assert fresh.actions[0].payload.training_file == LEGACY_TRAIN  # type: ignore[union-attr]


def test_quota_walls_are_announced() -> None:
    crowded = [file(f"other-{i}-x.jsonl", id=f"file-{i}") for i in range(50)]
    p = plan(desired([SPEC]), observed(crowded), digests=DIGESTS)
    assert any("limit of 50" in w for w in p.warnings)
    assert "warning: Account embedded holds 50 fine-tuning files" in render_plan(p)


def test_failed_provisioning_is_not_retried_with_the_same_spec() -> None:
    p = plan(desired([SPEC], [deployment_spec()]), observed(READY_FILES, [DONE], [deployment(model=FT_MODEL,
                                                                                            state="Failed")]),
             digests=DIGESTS)
    assert p.actions == () and [b.reason for b in p.blocked] == [Reason.DEPLOYMENT_FAILED]
    changed = plan(
        desired([SPEC], [deployment_spec(capacity=2)]),
        observed(READY_FILES, [DONE], [deployment(model=FT_MODEL, state="Failed")]),
        digests=DIGESTS,
    )
    assert rows(changed) == [(K.UPDATE_DEPLOYMENT, "Deployment/bot", Reason.SPEC_CHANGED)]


def test_the_table_and_tests_cover_every_kind_and_reason() -> None:
    kinds = {k for case in CASES for k, _, _ in case[4]}
    reasons = {r for case in CASES for _, _, r in case[4]}
    here = Path(__file__)
    source = here.read_text() + here.with_name("test_plan_render.py").read_text()
    kinds |= {k for k in K if f"K.{k.name}" in source or f'"{k.value}"' in source}
    reasons |= {r for r in Reason if f"Reason.{r.name}" in source}
    assert kinds == set(K)
    assert reasons == set(Reason)


EVAL = ROOT / "data" / "eval.jsonl"
EVAL_DIGESTS = {**DIGESTS, EVAL: "e" * 64}


def test_eval_gate_is_judged_before_the_model_is_served() -> None:
    from tunekeeper.reconcile import gates as gating

    spec = deployment_spec(gates=Gates(eval_file=DataRef(path=EVAL, display="data/eval.jsonl")))
    seen = observed(READY_FILES, [DONE])
    pending = plan(desired([SPEC], [spec]), seen, digests=EVAL_DIGESTS)
    assert rows(pending) == [(K.EVALUATE_MODEL, "Deployment/bot", Reason.EVAL_PENDING),
                             (K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.EVAL_PENDING)]
    assert pending.actions[0].after and pending.actions[0].after["candidate"] == "bot-tk-eval"
    assert render_plan(pending).endswith("Plan: 1 to create, 0 to change, 0 to delete. 1 to evaluate.")
    key = gating.eval_key("bot", FT_MODEL, "e" * 64)
    passed = plan(desired([SPEC], [spec]), seen, digests=EVAL_DIGESTS, known=Known(evals={key: True}))
    assert rows(passed) == [(K.CREATE_DEPLOYMENT, "Deployment/bot", Reason.NOT_IN_ACCOUNT)]
    failed = plan(desired([SPEC], [spec]), seen, digests=EVAL_DIGESTS, known=Known(evals={key: False}))
    assert failed.actions == () and [b.reason for b in failed.blocked] == [Reason.GATE_FAILED]
    serving = plan(desired([SPEC], [spec]), observed(READY_FILES, [DONE], [deployment(model=FT_MODEL)]),
                   digests=EVAL_DIGESTS)
    assert serving.actions == ()  # a model already served is not judged again


def test_eval_judging() -> None:
    from tunekeeper.reconcile.evaluation import EvalCase, judge

    cases = [EvalCase(({"role": "user", "content": "Capital of France?"},), "Paris."),
             EvalCase(({"role": "user", "content": "2+2?"},), "4")]
    assert judge(cases, ["  paris.  Shocking.", "It is 4"]).passed
    verdict = judge(cases, ["Paris.", "five"])
    assert not verdict.passed and verdict.message.startswith("1 of 2 eval examples passed; example 2")


def test_a_new_resource_sharing_a_suffix_does_not_take_anothers_job_as_its_previous() -> None:
    a = job_spec("a", suffix="shared", hyperparameters=Hyperparameters(n_epochs=5), allow_replacement=True)
    b = job_spec("b", suffix="shared", allow_replacement=True)
    old_a = job_for(job_spec("a", suffix="shared"), id="ftjob-a")
    p = plan(
        desired([a, b]), observed(READY_FILES, [old_a]), digests=DIGESTS, known=Known(jobs={"a": "ftjob-a"})
    )
    assert rows(p) == [(K.CREATE_JOB, "FineTuneJob/a", Reason.REQUIRES_NEW_TRAINING),
                       (K.CREATE_JOB, "FineTuneJob/b", Reason.NOT_IN_ACCOUNT)]


def test_the_oldest_running_twin_is_kept() -> None:
    twins = [
        job_for(SPEC, "running", id="ftjob-1", created=10),
        job_for(SPEC, "running", id="ftjob-2", created=11),
    ]
    p = plan(desired([SPEC]), observed(READY_FILES, twins), digests=DIGESTS)
    assert [(a.kind, (a.before or {})["job_id"]) for a in p.actions] == [
        (K.CANCEL_JOB, "ftjob-2"), (K.WAIT_JOB, "ftjob-1")]


def test_actions_carry_everything_apply_needs() -> None:
    """The payload is the request: apply reads nothing else (no manifests, no display fields)."""
    from tunekeeper.cloud.base import DeploymentRequest
    from tunekeeper.reconcile.model import DeploymentPayload, FilePayload, JobPayload, JobRefPayload

    fresh = plan(desired([SPEC], [deployment_spec()]), observed(), digests=DIGESTS)
    upload = fresh.actions[0].payload
    assert upload == FilePayload(TRAIN_NAME, "a" * 64, "data/train.jsonl", None, "data/train.jsonl")
    create = next(a.payload for a in fresh.actions if a.kind is K.CREATE_JOB)
    assert create == JobPayload(model=BASE, training_file=TRAIN_NAME, validation_file=VALID_NAME,
                                method=Method.SUPERVISED, hyperparameters=Hyperparameters(n_epochs=3),
                                suffix="bot", seed=DONE.seed or 0, fingerprint=fingerprint(SPEC))
    waiting = next(a.payload for a in fresh.actions if a.kind is K.CREATE_DEPLOYMENT)
    assert isinstance(waiting, DeploymentPayload) and waiting.request is None  # the model is not known yet

    trained = plan(
        desired([SPEC], [deployment_spec(capacity=3)]), observed(READY_FILES, [DONE]), digests=DIGESTS
    )
    (put,) = trained.actions
    assert isinstance(put.payload, DeploymentPayload)
    assert put.payload.request == DeploymentRequest(
        name="bot",
        model_name=FT_MODEL,
        model_version="1",
        sku=Sku.STANDARD,
        capacity=3,
        tags=markers.deployment_tags(
            "bot",
            spec_hash=markers.deployment_spec_hash(FT_MODEL, "1", "Standard", 3),
            deletion_policy=DeletionPolicy.DELETE,
            owner=OWNER.id,
            manifest="manifests/bot.yaml",
        ),
    )

    replaced = plan(
        desired([job_spec(seed=7, allow_replacement=True)]),
        observed(READY_FILES, [job_for(SPEC, "running")]),
        digests=DIGESTS,
    )
    assert replaced.actions[0].payload == JobRefPayload("ftjob-1", "running", BASE, None)


def test_child_job_names_its_parent_while_the_parent_trains() -> None:
    from tunekeeper.reconcile.model import JobPayload

    child = job_spec(
        "child", base_model=None, from_job="bot", training_file=DataRef(path=OTHER), validation_file=None
    )
    p = plan(desired([SPEC, child]), observed(READY_FILES, [job_for(SPEC, "running")]), digests=DIGESTS)
    payload = next(a.payload for a in p.actions if a.target.name == "child")
    assert isinstance(payload, JobPayload)
    assert (payload.model, payload.parent, payload.parent_job_id) == (None, "bot", "ftjob-1")


def test_every_payload_survives_a_plan_file() -> None:
    from tunekeeper.reconcile.model import Plan as PlanType

    spec = deployment_spec(gates=Gates(eval_file=DataRef(path=EVAL, display="data/eval.jsonl")))
    cases = [
        plan(desired([SPEC], [deployment_spec()]), observed(), digests=DIGESTS),
        plan(desired([SPEC], [spec]), observed(READY_FILES, [DONE]), digests=EVAL_DIGESTS),
        plan(
            desired([job_spec(seed=7, allow_replacement=True)]),
            observed(READY_FILES, [job_for(SPEC, "running")]),
            digests=DIGESTS,
        ),
        plan(
            desired([SPEC]),
            observed(
                [*READY_FILES, file(TRAIN_NAME, id="file-twin", created=5)],
                [DONE],
                [deployment("old", model=FT_MODEL)],
            ),
            digests=DIGESTS,
        ),
    ]
    for p in cases:
        assert PlanType.from_dict(p.to_dict()) == p


def test_a_job_the_shared_state_file_names_is_not_taken_from_another_owner() -> None:
    """Two stacks of one repository share .tunekeeper/state.json; same resource name, other owner."""
    theirs_train = f"tk-{THEM.id}-{'a' * 16}-train.jsonl"
    their_job = job_for(SPEC, "running", id="ftjob-9", training="file-theirs00", seed=99)
    p = plan(desired([job_spec(seed=7, allow_replacement=True)]),
             observed([*READY_FILES, file(theirs_train, id="file-theirs00")], [their_job]), digests=DIGESTS,
             known=Known(jobs={"bot": "ftjob-9"}))
    assert rows(p) == [(K.CREATE_JOB, "FineTuneJob/bot", Reason.NOT_IN_ACCOUNT)]  # their run is not cancelled
