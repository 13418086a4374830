"""PR-driven promotion across accounts, end to end over the emulator (manifests/examples/promotion).

Given the example's two Accounts, dev (trains) and prod (serves, another subscription), both
served by the embedded emulator (``TUNEKEEPER_EMULATE=1``), and model v1 trained in dev and
serving in prod through a cross-account deployment:

- when a pull request changes the training data, the Markdown plan shows the new training with
  its cost and the deployment in prod; the saved plan is applied; dev trains v2; the gates pass;
  prod serves v2, deployed with ``properties.model.source`` = the dev account; reverting the pull
  request returns prod to v1, which was retained, with no new training;
- when the change breaks what the eval gate expects, v2 is trained but prod keeps serving v1,
  and status and plan say why; reverting the pull request returns to v1 with no new training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .cli_helpers import FAST, Outcome, copy_example, run

pytestmark = pytest.mark.slow

EMULATE = {"TUNEKEEPER_EMULATE": "1"}
DOCUMENTED = Path(__file__).resolve().parents[2] / "docs" / "examples" / "promotion-plan.md"
REGENERATE_ENV = "TUNEKEEPER_REGENERATE_DOCS"
# The pull request of the scenario: one more training example.
PR_EXAMPLE = ("Do you offer student discounts?",
              "Yes: 50% off with a valid student email, under Billing > Plan.")
SYSTEM = "You are Contoso's support assistant. Answer in one or two sentences."
DEV_ID = ("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-ml-dev/providers/"
          "Microsoft.CognitiveServices/accounts/contoso-ft-dev")


def tk(*args: str | Path) -> Outcome:
    return run(*args, env=EMULATE)


def example(line: tuple[str, str]) -> str:
    q, a = line
    return json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
                                    {"role": "assistant", "content": a}]}) + "\n"


def rows(project: Path) -> dict[tuple[str, str], dict[str, Any]]:
    shown = tk("status", project, "-o", "json")
    assert shown.exit_code == 0, shown
    return {(r["kind"], r["name"]): r for r in json.loads(shown.stdout)}


def prod_deployment(project: Path) -> Any:
    """The prod deployment as ARM returns it (model name and source), read with the official client."""
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential
    from tunekeeper.emulator import Emulator

    with Emulator(data_dir=project / ".tunekeeper" / "emulator", speed=float(FAST)) as emulator:
        arm = CognitiveServicesManagementClient(
            credential=StaticTokenCredential(), subscription_id="22222222-2222-2222-2222-222222222222",
            base_url=emulator.url, per_call_policies=[AllowHttpForLoopback()], polling_interval=0)
        try:
            return arm.deployments.get("rg-ml-prod", "contoso-ft-prod", "support-bot")
        finally:
            arm.close()


def jobs_in_dev(project: Path) -> list[str]:
    from openai import AzureOpenAI
    from tunekeeper.emulator import Emulator

    with Emulator(data_dir=project / ".tunekeeper" / "emulator", api_key="k", speed=float(FAST)) as emulator:
        client = AzureOpenAI(azure_endpoint=emulator.account_url("contoso-ft-dev"), api_key="k",
                             api_version="2025-04-01-preview", max_retries=0)
        try:
            return sorted(j.id for j in client.fine_tuning.jobs.list(limit=100))
        finally:
            client.close()


@pytest.fixture
def v1_in_prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = copy_example("promotion", tmp_path)
    monkeypatch.chdir(project)
    applied = tk("apply", project, "--wait", "--timeout", "120")
    assert applied.exit_code == 0, applied
    return project


def test_a_pull_request_trains_in_dev_and_promotes_to_prod(v1_in_prod: Path) -> None:
    project = v1_in_prod
    v1 = rows(project)[("FineTuneJob", "support-bot")]["fine_tuned_model"]
    assert prod_deployment(project).properties.model.name == v1

    # the pull request: one more training example
    original = (project / "data" / "training.jsonl").read_text()
    with (project / "data" / "training.jsonl").open("a") as training:
        training.write(example(PR_EXAMPLE))
    comment = tk("plan", project, "-o", "markdown", "--out", "pr.plan")
    assert comment.exit_code == 0, comment
    assert "### Account `dev`" in comment.stdout and "### Account `prod`" in comment.stdout
    train = next(line for line in comment.stdout.splitlines() if line.startswith("| `-/+` | `support-bot`"))
    assert "| 13 |" in train and "| 3 |" in train and re.search(r"\| \d+\.\d\d USD \|", train), train
    assert "`spec.trainingFile` changed" in train
    assert "trained in `dev`" in comment.stdout and "1.70 USD" in comment.stdout
    assert "Estimated cost: training (once)" in comment.stdout

    # merged: the reviewed plan is applied, then scheduled runs carry it on
    assert tk("apply", "pr.plan").exit_code == 0
    carried = tk("apply", project, "--wait", "--timeout", "120")
    assert carried.exit_code == 0, carried

    after = rows(project)
    v2 = after[("FineTuneJob", "support-bot")]["fine_tuned_model"]
    served = prod_deployment(project)
    assert v2 and v2 != v1
    assert (served.properties.model.name, served.properties.model.source) == (v2, DEV_ID)
    deployment = after[("Deployment", "support-bot")]
    assert (deployment["account"], deployment["sync"]["status"], deployment["health"]["status"]) == (
        "prod", "Synced", "Healthy")
    assert after[("FineTuneJob", "support-bot")]["account"] == "dev"
    answer = tk("chat", "support-bot", PR_EXAMPLE[0], project)
    assert answer.stdout.strip() == PR_EXAMPLE[1], answer
    assert tk("plan", project, "--detailed-exitcode").exit_code == 0

    # the pull request is reverted: v1 was retained, so prod returns to it with no new training
    trained = jobs_in_dev(project)
    (project / "data" / "training.jsonl").write_text(original)
    reverted = tk("plan", project, "-o", "markdown")
    assert reverted.exit_code == 0 and "**Train**" not in reverted.stdout, reverted
    assert tk("apply", project, "--wait", "--timeout", "120").exit_code == 0
    back = prod_deployment(project).properties.model
    assert (back.name, back.source) == (v1, DEV_ID)
    assert set(jobs_in_dev(project)) <= set(trained)  # nothing was trained again
    assert rows(project)[("FineTuneJob", "support-bot")]["fine_tuned_model"] == v1


def test_a_failed_gate_keeps_prod_on_v1_and_reverting_trains_nothing(v1_in_prod: Path) -> None:
    project = v1_in_prod
    v1 = rows(project)[("FineTuneJob", "support-bot")]["fine_tuned_model"]
    training = project / "data" / "training.jsonl"
    original = training.read_text()

    # the pull request rewrites an answer the eval set expects ("Reset password")
    training.write_text(original.replace("then Reset password; a link arrives by email.",
                                         "then follow the link in the email we send you."))
    assert tk("apply", project, "--wait", "--timeout", "120").exit_code == 1  # blocked: the gate failed

    after = rows(project)
    deployment = after[("Deployment", "support-bot")]
    gates = next(c for c in deployment["conditions"] if c["type"] == "GatesPassed")
    assert prod_deployment(project).properties.model.name == v1
    assert after[("FineTuneJob", "support-bot")]["fine_tuned_model"] not in (None, v1)  # v2 was trained
    assert gates["status"] == "False" and "failed the eval set data/eval.jsonl" in gates["message"]
    assert (deployment["sync"]["status"], deployment["health"]["status"]) == ("OutOfSync", "Healthy")
    assert "Still serving the previous model" in deployment["health"]["message"]
    assert "failed the eval set" in tk("status", project).stdout
    blocked = tk("plan", project, "--detailed-exitcode")
    assert blocked.exit_code == 4, blocked
    assert "! blocked  Deployment/support-bot  gate failed" in blocked.stdout
    comment = tk("plan", project, "-o", "markdown").stdout
    assert "### Account `prod`" in comment and "- `Deployment/support-bot`: gate failed." in comment

    # the pull request is reverted: v1 is still there, so nothing trains
    trained = jobs_in_dev(project)
    training.write_text(original)
    reverted = tk("apply", project, "--wait", "--timeout", "120")
    assert reverted.exit_code == 0, reverted
    assert prod_deployment(project).properties.model.name == v1
    assert set(jobs_in_dev(project)) <= set(trained)  # no new training
    assert rows(project)[("Deployment", "support-bot")]["sync"]["status"] == "Synced"


def test_the_documented_plan_comment_is_current(v1_in_prod: Path) -> None:
    """docs/examples/promotion-plan.md is the comment of the pull request above, byte for byte."""
    import os

    with (v1_in_prod / "data" / "training.jsonl").open("a") as training:
        training.write(example(PR_EXAMPLE))
    comment = tk("plan", v1_in_prod, "-o", "markdown")
    assert comment.exit_code == 0, comment
    if os.environ.get(REGENERATE_ENV):
        DOCUMENTED.parent.mkdir(parents=True, exist_ok=True)
        DOCUMENTED.write_text(comment.stdout)
    assert DOCUMENTED.is_file(), f"run this test with {REGENERATE_ENV}=1 to write {DOCUMENTED.name}"
    assert comment.stdout == DOCUMENTED.read_text(), (
        f"the plan comment changed; review the difference, then run this test with {REGENERATE_ENV}=1")


def test_a_plan_that_cannot_be_made_comments_the_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_example("promotion", tmp_path)
    monkeypatch.chdir(project)
    with (project / "data" / "training.jsonl").open("a") as training:
        training.write('{"messages": [}\n')

    comment = tk("plan", project, "-o", "markdown")

    assert comment.exit_code == 1
    assert "**The plan could not be made.**" in comment.stdout
    assert "data/training.jsonl:13:" in comment.stdout and "line is not valid JSON" in comment.stdout
