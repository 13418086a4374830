"""Ownership markers: content-hashed file names, job fingerprints and seeds, deployment tags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tunekeeper.cloud.base import ObservedDeployment, ObservedJob
from tunekeeper.reconcile import markers
from tunekeeper.resources.specs import DataRef, DeletionPolicy, FineTuneJobSpec, Hyperparameters, Method

SPEC = FineTuneJobSpec(name="support-bot", account=None, base_model="gpt-4.1", from_job=None,
                       method=Method.SUPERVISED, hyperparameters=Hyperparameters(n_epochs=2),
                       training_file=DataRef(path=Path("/r/train.jsonl")))


def fp(spec: FineTuneJobSpec, training: str = "a" * 64) -> str:
    return markers.job_fingerprint(
        spec, base=spec.base_model or "", training_digest=training, validation_digest=None
    )


def test_file_names_carry_the_content_hash() -> None:
    assert markers.remote_filename(DataRef(path=Path("/r/data/train.jsonl")), "3f2a" + "0" * 60) == \
        "tk-3f2a000000000000-train.jsonl"
    url = DataRef(url="https://blob.example/c/train.jsonl?sig=secret")
    digest = markers.data_digest(url, {})
    assert markers.remote_filename(url, digest).endswith("-train.jsonl") and "secret" not in digest
    assert markers.is_owned_filename("tk-3f2a000000000000-train.jsonl")
    assert not markers.is_owned_filename("train.jsonl") and not markers.is_owned_filename("tk-short")


def test_effective_suffix_defaults_to_a_valid_form_of_the_name() -> None:
    assert markers.effective_suffix(SPEC) == "support-bot"
    assert markers.effective_suffix(dataclasses.replace(SPEC, suffix="v2")) == "v2"
    long = dataclasses.replace(SPEC, name="a.very.long.name-" + "x" * 60)
    suffix = markers.effective_suffix(long)
    assert len(suffix) == 40 and "." not in suffix


def test_fingerprint_covers_everything_that_needs_new_training() -> None:
    base = fp(SPEC)
    assert fp(SPEC) == base
    for changed in (
        dataclasses.replace(SPEC, base_model="gpt-4.1-mini"),
        dataclasses.replace(SPEC, method=Method.DPO),
        dataclasses.replace(SPEC, hyperparameters=Hyperparameters(n_epochs=3)),
        dataclasses.replace(SPEC, seed=1),
        dataclasses.replace(SPEC, suffix="other"),
    ):
        assert fp(changed) != base
    assert fp(SPEC, training="b" * 64) != base
    assert fp(dataclasses.replace(SPEC, allow_replacement=True)) == base  # not a training input


def test_derived_seed_is_deterministic_int32_and_explicit_seed_wins() -> None:
    seed = markers.effective_seed(SPEC, fp(SPEC))
    assert seed == markers.effective_seed(SPEC, fp(SPEC)) and 0 < seed < 2**31
    assert seed != markers.effective_seed(dataclasses.replace(SPEC, name="other"), fp(SPEC))
    assert markers.effective_seed(dataclasses.replace(SPEC, seed=42), fp(SPEC)) == 42


def job(**kw: object) -> ObservedJob:
    values: dict[str, object] = {
        "id": "ftjob-1",
        "status": "succeeded",
        "model": "gpt-4.1",
        "training_file": "file-1",
        "created_at": 1,
        "suffix": "support-bot",
        "seed": 7,
        "method": "supervised",
        "hyperparameters": {"n_epochs": 2, "batch_size": 8},
    }
    values.update(kw)
    return ObservedJob(**values)  # type: ignore[arg-type]


def test_adoption_rule() -> None:
    ids = frozenset({"file-1"})

    def matches(j: ObservedJob, spec: FineTuneJobSpec = SPEC) -> bool:
        return markers.job_matches(j, spec, model="gpt-4.1", training_ids=ids, validation_ids=None, seed=7)

    assert matches(job())
    assert not matches(job(model="gpt-4o"))
    assert not matches(job(training_file="file-2"))
    assert not matches(job(validation_file="file-9"))
    assert not matches(job(seed=8))
    assert not matches(job(suffix="x"))
    assert not matches(job(method="dpo"))
    assert not matches(job(hyperparameters={"n_epochs": 3}))
    # values the service chose for "auto" are not compared
    assert matches(job(hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 1.8}))
    lr = dataclasses.replace(SPEC, hyperparameters=Hyperparameters(n_epochs=2, learning_rate_multiplier=0.1))
    assert matches(job(hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 0.1 + 1e-12}), lr)


def test_deployment_tags_mark_ownership() -> None:
    tags = markers.deployment_tags("bot", spec_hash="h", deletion_policy=DeletionPolicy.RETAIN)
    assert tags == {"tunekeeper.io/managed-by": "tunekeeper", "tunekeeper.io/resource": "Deployment/bot",
                    "tunekeeper.io/spec-hash": "h", "tunekeeper.io/deletion-policy": "Retain"}
    dep = ObservedDeployment(
        name="bot",
        model_name="m",
        model_version="1",
        model_format="OpenAI",
        sku="Standard",
        capacity=1,
        provisioning_state="Succeeded",
        tags=tags,
    )
    assert markers.declared_name(dep) == "bot" and markers.deployment_owner(dep) is None  # legacy: no owner
    assert (
        markers.declared_name(dataclasses.replace(dep, tags={"tunekeeper.io/resource": "Deployment/bot"}))
        is None
    )
    owned = dataclasses.replace(dep, tags=markers.deployment_tags("bot", spec_hash="h", owner="0123456789ab",
                                                                  deletion_policy=DeletionPolicy.RETAIN))
    assert markers.deployment_owner(owned) == "0123456789ab" and markers.declared_name(owned) == "bot"
    assert markers.deployment_spec_hash("m", "1", "Standard", 1) != markers.deployment_spec_hash(
        "m", "1", "Standard", 2
    )
