"""Golden values of the ownership markers: fixed inputs -> literal expected values.

The markers are a contract with every account tunekeeper ever touched: a job is adopted by its
fingerprint-derived seed and suffix, a file by its content-hashed name, a deployment by its tags.
If one of these values changes, every user's account looks foreign and the next apply retrains
and re-uploads everything. A change here must be deliberate (a new marker version that still
reads the old one), never a side effect of a refactoring.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tunekeeper.reconcile import gates, markers
from tunekeeper.resources.specs import (
    DataRef,
    DeletionPolicy,
    FineTuneJobSpec,
    Hyperparameters,
    Method,
    TrainingType,
)

SPEC = FineTuneJobSpec(
    name="support-bot",
    account=None,
    base_model="gpt-4.1-2025-04-14",
    from_job=None,
    method=Method.SUPERVISED,
    hyperparameters=Hyperparameters(n_epochs=3, learning_rate_multiplier=0.5),
    training_file=DataRef(path=Path("/r/data/train.jsonl")),
    validation_file=DataRef(path=Path("/r/data/valid.jsonl")),
)
SPEC_FINGERPRINT = "3564875ebab7a3f4f75607746a531f09bb2fe655c9b802f37b016fc79f895f62"


def test_job_fingerprint_and_derived_seed() -> None:
    fp = markers.job_fingerprint(SPEC, base="gpt-4.1-2025-04-14", training_digest="a" * 64,
                                 validation_digest="b" * 64)
    assert fp == SPEC_FINGERPRINT
    assert markers.effective_seed(SPEC, fp) == 1676904257
    assert markers.effective_suffix(SPEC) == "support-bot"


def test_from_job_fingerprint_chains_the_parent_and_explicit_values_win() -> None:
    child = dataclasses.replace(SPEC, name="support-bot-v2", base_model=None, from_job="support-bot", seed=42,
                                suffix="v2", training_type=TrainingType.GLOBAL, method=Method.DPO,
                                hyperparameters=Hyperparameters(beta=0.1))
    fp = markers.job_fingerprint(child, base="job:" + SPEC_FINGERPRINT, training_digest="c" * 64,
                                 validation_digest=None)
    assert fp == "138638230e0a9bd64db2fe3e88ed383268ebb6b014168f6a1370d1d81c679dcb"
    assert markers.effective_seed(child, fp) == 42
    assert markers.effective_suffix(child) == "v2"


def test_reinforcement_grader_and_suffix_from_a_name_with_dots() -> None:
    child = dataclasses.replace(SPEC, name="support-bot.tone", base_model=None, from_job="support-bot",
                                method=Method.REINFORCEMENT,
                                hyperparameters=Hyperparameters(grader={"type": "string_check", "name": "g"}),
                                validation_file=None)
    fp = markers.job_fingerprint(child, base="job:" + SPEC_FINGERPRINT, training_digest="c" * 64,
                                 validation_digest=None)
    assert fp == "c484efdf40e7bca67e0ac1d4fb8fc92dd54f5f934a125e7b0efb74dfcd3ed5d7"
    assert markers.effective_seed(child, fp) == 2142033293
    assert markers.effective_suffix(child) == "support-bot-tone"


def test_file_names() -> None:
    assert markers.remote_filename(DataRef(path=Path("/r/data/train.jsonl")), "a" * 64) == \
        "tk-aaaaaaaaaaaaaaaa-train.jsonl"
    url = DataRef(url="https://blob.example/c/train.jsonl?sig=x")
    digest = markers.data_digest(url, {})
    assert digest == "0b21f86165cd7f2b14fc0bf57e5c20eb9afc91b7b91d99e91ec3bc7c8120838a"
    assert markers.remote_filename(url, digest) == "tk-0b21f86165cd7f2b-train.jsonl"


def test_deployment_spec_hash_and_tags() -> None:
    assert markers.deployment_spec_hash("gpt-4.1-2025-04-14.ft-abc", "1", "Standard", 2) == "988cef694531b1f5"
    assert markers.deployment_tags(
        "support-bot",
        spec_hash="0123456789abcdef",
        deletion_policy=DeletionPolicy.DELETE,
        manifest="manifests/bot.yaml",
    ) == {
        "tunekeeper.io/managed-by": "tunekeeper",
        "tunekeeper.io/resource": "Deployment/support-bot",
        "tunekeeper.io/spec-hash": "0123456789abcdef",
        "tunekeeper.io/deletion-policy": "Delete",
        "tunekeeper.io/manifest": "manifests/bot.yaml",
    }


def test_eval_candidate_and_verdict_key() -> None:
    assert gates.candidate_name("support-bot") == "support-bot-tk-eval"
    assert gates.candidate_name("x" * 64) == "x" * 56 + "-tk-eval"
    assert gates.eval_key("support-bot", "m", "e" * 64) == "support-bot|m|eeeeeeeeeeeeeeee"


def test_owner_marked_file_names_and_tags() -> None:
    """Version 0.2 markers: the owner id (12 hex) in file names and an ARM tag; 0.1 names still parse."""
    from tunekeeper.resources.specs import Owner

    owner = Owner("git:0d7638d0706d1ae96ba47e15dddccb9e84047220:manifests/examples/clippy")
    assert owner.id == "a4cba567d82d"
    assert Owner("name:team-search").id == "21ab7ae93169"
    name = markers.remote_filename(DataRef(path=Path("/r/data/train.jsonl")), "a" * 64, owner.id)
    assert name == "tk-a4cba567d82d-aaaaaaaaaaaaaaaa-train.jsonl"
    assert markers.file_mark(name) == markers.FileMark("a4cba567d82d", "a" * 16, "train.jsonl")
    assert markers.file_mark("tk-aaaaaaaaaaaaaaaa-train.jsonl") == markers.FileMark(
        None, "a" * 16, "train.jsonl"
    )
    assert markers.file_mark("train.jsonl") is None and markers.file_mark("tk-short-x.jsonl") is None
    assert markers.deployment_tags("bot", spec_hash="0123456789abcdef", deletion_policy=DeletionPolicy.RETAIN,
                                   owner=owner.id) == {
        "tunekeeper.io/managed-by": "tunekeeper",
        "tunekeeper.io/owner": "a4cba567d82d",
        "tunekeeper.io/resource": "Deployment/bot",
        "tunekeeper.io/spec-hash": "0123456789abcdef",
        "tunekeeper.io/deletion-policy": "Retain",
    }
