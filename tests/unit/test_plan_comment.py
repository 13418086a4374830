"""The pull-request comment (``plan -o markdown``), pure: per account, costs from the price table,
gate results where known, blocked resources, deletions, and the error comment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tunekeeper.cloud.base import DeploymentRequest
from tunekeeper.datasets import DatasetStats
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.reconcile.comment import MARKER, CommentFacts, render_comment, render_error_comment
from tunekeeper.reconcile.conditions import Condition
from tunekeeper.reconcile.costs import PriceTable
from tunekeeper.reconcile.model import (
    Action,
    ActionKind,
    Blocked,
    DeploymentPayload,
    DeploymentRefPayload,
    DeploymentView,
    JobPayload,
    Plan,
    Reason,
    ResourceKey,
)
from tunekeeper.reconcile.status import ResourceStatus
from tunekeeper.resources.specs import (
    DataRef,
    DeploymentSpec,
    Desired,
    FineTuneJobSpec,
    Gates,
    Hyperparameters,
    Method,
    MetricGate,
    ModelRef,
    Sku,
)

TRAIN = Path("/repo/data/train.jsonl")
PRICES = PriceTable(
    "2025-11-01",
    "https://example.test/prices",
    "USD",
    {"gpt-4.1-2025-04-14": {"Standard": Decimal(25)}},
    {"gpt-4.1-2025-04-14": {"Standard": Decimal("3.00")}},
)
JOB = FineTuneJobSpec(
    "bot",
    "dev",
    "gpt-4.1-2025-04-14",
    None,
    Method.SUPERVISED,
    Hyperparameters(n_epochs=2),
    DataRef(path=TRAIN, display="data/train.jsonl"),
)
GATED = DeploymentSpec(
    "bot", "prod", ModelRef(from_job="bot"), gates=Gates(metrics=(MetricGate("full_valid_loss", "<", 1.5),))
)
PLAIN = DeploymentSpec(
    "legacy", "prod", ModelRef(base_model="gpt-4.1", version="2025-04-14"), Sku.STANDARD, 2
)
DESIRED = Desired(root=Path("/repo"), jobs=(JOB,), deployments=(GATED, PLAIN))
STATS = DatasetStats(
    bytes=1,
    lines=40,
    examples=40,
    assistant_turns=40,
    tokens=500_000,
    tokens_exact=False,
    epochs=2,
    billed_tokens=1_000_000,
)


def job_action() -> Action:
    payload = JobPayload(
        "gpt-4.1-2025-04-14",
        "tk-1-train.jsonl",
        None,
        Method.SUPERVISED,
        Hyperparameters(n_epochs=2),
        "bot",
        7,
    )
    return Action(
        ActionKind.CREATE_JOB, ResourceKey("FineTuneJob", "bot"), Reason.REQUIRES_NEW_TRAINING, payload, "dev"
    )


def deploy_action() -> Action:
    request = DeploymentRequest("bot", "gpt-4.1-2025-04-14.ft-abc", "1", sku=Sku.STANDARD, capacity=1)
    payload = DeploymentPayload("bot", request, "final", "Standard", 1)
    return Action(
        ActionKind.CREATE_DEPLOYMENT, ResourceKey("Deployment", "bot"), Reason.NOT_IN_ACCOUNT, payload, "prod"
    )


def test_each_account_with_training_cost_hosting_cost_and_gate_results() -> None:
    gates = Condition(
        "GatesPassed", "True", "GatesPassed", "Metric gates passed on final: full_valid_loss 0.9 < 1.5."
    )
    status = ResourceStatus("Deployment", "bot", "prod", (gates,))
    plan = Plan("2", "f", (job_action(), deploy_action()))
    facts = CommentFacts(DESIRED, {str(TRAIN): STATS}, PRICES, (status,), {"bot": ("spec.trainingFile",)})

    text = render_comment(plan, facts)

    assert text.startswith(MARKER + "\n## tunekeeper plan\n")
    assert text.index("### Account `dev`") < text.index("### Account `prod`")
    assert (
        "| `-/+` | `bot` | gpt-4.1-2025-04-14 (supervised, Standard) | 40 | ~500,000 | 2 | ~1,000,000 | "
        "25.00 USD | replaces the current model: `spec.trainingFile` changed |"
    ) in text
    assert (
        "| `+` | `bot` | `FineTuneJob/bot` (final), trained in `dev` | Standard x1 | 3.00 USD | "
        "✅ Metric gates passed on final: full_valid_loss 0.9 < 1.5. | not in account |"
    ) in text
    assert "Estimated cost: training (once) 25.00 USD; new hosting 3.00 USD per hour." in text
    assert "list prices as of 2025-11-01, https://example.test/prices" in text


def test_blocked_deleted_changed_and_warnings() -> None:
    update = Action(
        ActionKind.UPDATE_DEPLOYMENT,
        ResourceKey("Deployment", "legacy"),
        Reason.DRIFT,
        DeploymentPayload(
            "legacy",
            DeploymentRequest("legacy", "gpt-4.1", "2025-04-14", capacity=2),
            "gpt-4.1",
            "Standard",
            2,
            DeploymentView("gpt-4.1", "2025-04-14", "Standard", 5, "Succeeded"),
        ),
        "prod",
    )
    gone = Action(
        ActionKind.DELETE_DEPLOYMENT,
        ResourceKey("Deployment", "old"),
        Reason.NO_LONGER_DECLARED,
        DeploymentRefPayload("old"),
        "prod",
    )
    blocked = Blocked(
        ResourceKey("Deployment", "bot"), Reason.GATE_FAILED, "Model final failed its gates.", "prod"
    )
    warning = Diagnostic("data/train.jsonl", 0, 0, "warning", "file has 40 examples", hint="add more")
    text = render_comment(
        Plan("2", "f", (update, gone), (blocked,), notes=("FineTuneJob/bot re-adopts a kept job.",)),
        CommentFacts(DESIRED, prices=PRICES, warnings=(warning,)),
    )

    assert (
        "| `~` | `legacy` | `gpt-4.1` | Standard x2 (capacity 5 → 2) | none (billed per token) | none |"
        in text
    )
    assert "| `-` | `Deployment/old` | no longer declared |" in text
    assert "- `Deployment/bot`: gate failed. Model final failed its gates." in text
    assert "**Notes**\n\n- FineTuneJob/bot re-adopts a kept job." in text
    assert "data/train.jsonl: warning: file has 40 examples\n    hint: add more" in text


def test_an_error_replaces_the_plan() -> None:
    problem = Diagnostic(
        "jobs.yaml",
        9,
        17,
        "error",
        "spec.method.hyperparameters.n_epochs must be 1..50, got 0",
        hint="remove the field",
    )
    text = render_error_comment("1 error", (problem,))
    assert "**The plan could not be made.**" in text
    assert (
        "jobs.yaml:9:17: error: spec.method.hyperparameters.n_epochs must be 1..50, got 0\n  hint: remove"
        in text
    )
