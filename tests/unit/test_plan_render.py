"""render_plan: text like the style guide, JSON that round-trips, Markdown for pull requests; no secrets."""

from __future__ import annotations

import json
from pathlib import Path

from tunekeeper.reconcile import Plan, Reason, plan, render_plan
from tunekeeper.resources.specs import DataRef, Hyperparameters

from .test_plan import (
    DIGESTS,
    DONE,
    READY_FILES,
    SPEC,
    deployment,
    deployment_spec,
    desired,
    job_spec,
    observed,
)

FT = DONE.fine_tuned_model or ""


def test_text_plan_shape() -> None:
    p = plan(desired([SPEC], [deployment_spec(capacity=20)]),
             observed(READY_FILES, [DONE], [deployment(model=FT, capacity=10)]), digests=DIGESTS)
    text = render_plan(p, "text")
    assert "~ update_deployment  Deployment/bot  capacity 10 -> 20" in text
    assert text.endswith("Plan: 0 to create, 1 to change, 0 to delete.")


def test_empty_plan_says_how_many_match() -> None:
    p = plan(desired([SPEC], [deployment_spec()]), observed(READY_FILES, [DONE], [deployment(model=FT)]),
             digests=DIGESTS)
    assert render_plan(p, "text") == "No changes. 2 resources match."


def test_empty_plan_with_one_resource_reads_in_the_singular() -> None:
    p = plan(desired([SPEC], []), observed(READY_FILES, [DONE], []), digests=DIGESTS)
    assert render_plan(p, "text") == "No changes. 1 resource matches."


def test_replacement_shows_minus_plus() -> None:
    p = plan(desired([job_spec(hyperparameters=Hyperparameters(n_epochs=9), allow_replacement=True)]),
             observed(READY_FILES, [DONE]), digests=DIGESTS)
    lines = render_plan(p, "text").splitlines()
    assert lines[0].lstrip().startswith("-/+ create_job")  # the replaced job is kept for rollback
    assert lines[-1] == "Plan: 1 to create, 0 to change, 0 to delete."
    running = plan(desired([job_spec(seed=7, allow_replacement=True)]),
                   observed(READY_FILES, [DONE.__class__(**{**{f: getattr(DONE, f) for f in DONE.__slots__},  # type: ignore[attr-defined]
                                                            "status": "running", "fine_tuned_model": None})]),
                   digests=DIGESTS)
    lines = render_plan(running, "text").splitlines()
    assert lines[0].lstrip().startswith("-/+ cancel_job") and lines[1].lstrip().startswith("-/+ create_job")
    assert lines[-1] == "Plan: 1 to create, 0 to change, 1 to delete."


def test_json_round_trips_and_markdown_has_a_table() -> None:
    p = plan(desired([SPEC], [deployment_spec()]), observed(), digests=DIGESTS)
    data = json.loads(render_plan(p, "json"))
    assert data["format_version"] == "2" and data["actions"][0]["kind"] == "upload_file"
    assert Plan.from_dict(data) == p
    md = render_plan(p, "markdown")
    assert md.startswith("**Plan: 4 to create, 0 to change, 0 to delete.**")
    assert "| `+` | upload_file |" in md


def test_secrets_in_import_urls_never_appear() -> None:
    url = "https://acct.blob.core.windows.net/data/train.jsonl?sv=2024&sig=SECRETSIG"
    spec = job_spec(training_file=DataRef(url=url, display=url), validation_file=None)
    p = plan(desired([spec]), observed(), digests=DIGESTS)
    for fmt in ("text", "json", "markdown"):
        out = render_plan(p, fmt)  # type: ignore[arg-type]
        assert "SECRETSIG" not in out and "sv=2024" not in out
        assert "(sensitive)" in out
    assert p.actions[0].kind.value == "import_file"


def test_blocked_resources_are_listed() -> None:
    failed = DONE.__class__(**{**{f: getattr(DONE, f) for f in DONE.__slots__}, "status": "failed",  # type: ignore[attr-defined]
                               "fine_tuned_model": None, "error_message": "Training diverged"})
    p = plan(desired([SPEC]), observed(READY_FILES, [failed]), digests=DIGESTS)
    text = render_plan(p, "text")
    assert "blocked" in text and "Training diverged" in text and p.blocked[0].reason is Reason.JOB_FAILED
    assert text.endswith("No changes. 0 resources match. 1 blocked.")


def test_paths_do_not_leak_into_names() -> None:
    spec = job_spec(training_file=DataRef(path=Path("/repo/data/train.jsonl"), display="data/train.jsonl"))
    p = plan(desired([spec]), observed(), digests=DIGESTS)
    assert "/repo" not in render_plan(p, "text")
