"""The CLI's pure pieces: did-you-mean lookups, status lines, progress events, error rendering."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from tunekeeper.cli._render import ProgressEvents, print_error, status_details
from tunekeeper.cli.reconcile import find_named
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import DatasetError, TunekeeperError
from tunekeeper.reconcile import Action, ActionKind, ActionOutcome, Outcome, Reason, ResourceKey


@pytest.mark.parametrize(
    ("name", "candidates", "message"),
    [
        (
            "suport-bot",
            ["support-bot", "clippy"],
            'No Deployment named "suport-bot". Did you mean "support-bot"?',
        ),
        ("zzz", ["support-bot", "clippy"], 'No Deployment named "zzz".'),
        ("clippy", [], 'No Deployment named "clippy".'),
    ],
)
def test_unknown_names_suggest_the_closest(name: str, candidates: list[str], message: str) -> None:
    with pytest.raises(TunekeeperError) as caught:
        find_named("Deployment", name, candidates)
    assert caught.value.message == message
    assert caught.value.hint is not None


def test_known_names_pass() -> None:
    assert find_named("FineTuneJob", "clippy", ["clippy", "vision"]) == "clippy"


JOB_ROW = {
    "kind": "FineTuneJob",
    "name": "clippy",
    "job_id": "ftjob-1",
    "job_status": "succeeded",
    "fine_tuned_model": "gpt-4.1.ft-1-clippy",
    "checkpoints": [{"id": "ftchkpt-a", "step": 14, "epoch": 1}, {"id": "ftchkpt-b", "step": 28, "epoch": 2}],
    "metrics": {
        "final": {
            "train_loss": 0.21,
            "valid_loss": 0.59,
            "full_valid_loss": 0.53,
            "train_mean_token_accuracy": 0.9,
            "valid_mean_token_accuracy": 0.78,
        },
        "steps": 28,
        "last_step": 28,
    },
    "conditions": [
        {"type": "Succeeded", "status": "True"},
        {"type": "Ready", "status": "True", "message": "ok"},
    ],
    "source": "clippy.yaml:3:1",
}
DEPLOYMENT_ROW = {
    "kind": "Deployment",
    "name": "clippy",
    "model": "gpt-4.1.ft-1-clippy",
    "version": "1",
    "serving": "final",
    "sku": "Standard",
    "capacity": 2,
    "provisioning_state": "Creating",
    "deployment_state": None,
    "conditions": [
        {"type": "GatesPassed", "status": "False", "message": "full_valid_loss 0.53 is not < 0.5."},
        {"type": "Ready", "status": "False", "message": "Provisioning state is Creating."},
    ],
}


def test_job_status_lines() -> None:
    lines = dict(status_details(JOB_ROW))
    assert lines["job"] == "ftjob-1 (succeeded)"
    assert lines["model"] == "gpt-4.1.ft-1-clippy"
    assert lines["checkpoints"] == "epoch 1, epoch 2 (ftchkpt-b last)"
    assert lines["loss"] == "train 0.2100, valid 0.5900, full valid 0.5300 (step 28)"
    assert lines["accuracy"] == "train 0.9000, valid 0.7800 (step 28)"
    assert lines["conditions"] == "Succeeded=True"
    assert "message" not in lines  # Ready=True: the headline says it all


def test_deployment_status_lines() -> None:
    lines = dict(status_details(DEPLOYMENT_ROW))
    assert lines["model"] == "gpt-4.1.ft-1-clippy version 1 (final)"
    assert lines["sku"] == "Standard x2"
    assert lines["provisioning"] == "Creating"
    assert lines["gates"] == "full_valid_loss 0.53 is not < 0.5."
    assert lines["message"] == "Provisioning state is Creating."


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, no_color=True, width=200), buffer


def test_progress_events_print_one_line_per_outcome_and_no_repeats() -> None:
    console, buffer = _console()
    job = Action(ActionKind.CREATE_JOB, ResourceKey("FineTuneJob", "clippy"), Reason.NOT_IN_ACCOUNT, None, {})
    wait = Action(ActionKind.WAIT_JOB, ResourceKey("FineTuneJob", "clippy"), Reason.JOB_RUNNING, {}, None)
    with ProgressEvents(console, bars=False) as events:
        events.action_finished(job, ActionOutcome(Outcome.DEFERRED, "file is pending"))
        events.action_finished(job, ActionOutcome(Outcome.DEFERRED, "file is pending"))
        events.action_finished(wait, ActionOutcome(Outcome.DEFERRED, "job is running"))
        events.action_finished(job, ActionOutcome(Outcome.DONE, "Created job ftjob-1"))
        events.progress("File/tk-1-train.jsonl", "Uploading train.jsonl", 10, 10)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "… + create_job FineTuneJob/clippy  file is pending",
        "✓ + create_job FineTuneJob/clippy  Created job ftjob-1",
    ]
    assert len(events.finished) == 4


def test_errors_render_every_diagnostic_and_the_hint() -> None:
    console, buffer = _console()
    error = DatasetError(
        [Diagnostic("data/train.jsonl", 3, 30, "error", "line is not valid JSON", hint="fix it")]
    )
    print_error(console, error, nothing_sent=True)
    assert buffer.getvalue().splitlines() == [
        "data/train.jsonl:3:30: error: line is not valid JSON",
        "  hint: fix it",
        "1 error(s). Nothing was sent.",
    ]
    console, buffer = _console()
    print_error(console, TunekeeperError("Deployment clippy is not serving yet", hint="run apply"))
    assert buffer.getvalue().splitlines() == [
        "error: Deployment clippy is not serving yet",
        "  hint: run apply",
    ]
