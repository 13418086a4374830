"""Loading manifests: YAML with positions, folders, typed specs, and the checks across resources.

Each cross-resource rule has a failing and a passing case; failures assert the message names
the file and line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import ManifestError
from tunekeeper.resources import (
    DataRef,
    DeletionPolicy,
    Method,
    MetricGate,
    ModelRef,
    SecretKeyRef,
    Sku,
    TrainingType,
    find_root,
    load,
)


def doc(kind: str, name: str, spec: str) -> str:
    return f"apiVersion: tunekeeper.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}"


def job(name: str, extra: str = "", source: str = "  baseModel: gpt-4.1-2025-04-14\n") -> str:
    return doc("FineTuneJob", name, source + "  trainingFile: data/train.jsonl\n" + extra)


def account(name: str) -> str:
    return doc(
        "Account",
        name,
        "  endpoint: https://contoso.openai.azure.com\n"
        "  subscriptionId: 00000000-0000-0000-0000-000000000000\n"
        "  resourceGroup: rg\n  accountName: contoso\n",
    )


def problems(repo: Path, *docs: str, name: str = "m.yaml") -> tuple[Diagnostic, ...]:
    path = repo / name
    path.write_text("---\n".join(docs))
    try:
        _, warnings = load([path], root=repo)
    except ManifestError as exc:
        return exc.diagnostics
    return warnings


def only_error(found: tuple[Diagnostic, ...], fragment: str, *, whole_file: bool = False) -> Diagnostic:
    matching = [d for d in found if fragment in d.message and d.severity == "error"]
    assert len(matching) >= 1, [d.render() for d in found]
    assert matching[0].path.endswith(".yaml")
    assert matching[0].line > 0 or whole_file
    return matching[0]


def line_in(repo: Path, marker: str, nth: int = 1, name: str = "m.yaml") -> int:
    hits = [i for i, line in enumerate((repo / name).read_text().splitlines(), 1) if marker in line]
    return hits[nth - 1]


# -- typed specs ---------------------------------------------------------------------------------


def test_specs_are_built_with_defaults_and_resolved_paths(repo: Path) -> None:
    (repo / "jobs").mkdir()
    (repo / "jobs" / "j.yaml").write_text(
        job("bot", "  validationFile: ../data/valid.jsonl\n  trainingType: Global\n  seed: 7\n  suffix: bot\n"
            "  method:\n    type: dpo\n    hyperparameters: {n_epochs: 2, batch_size: auto, beta: 0.2, "
            "learning_rate_multiplier: 1}\n").replace("data/train.jsonl", "../data/train.jsonl")
        + "---\n" + doc("Deployment", "bot", "  model: {fromJob: bot, checkpoint: 2}\n"
                        "  gates:\n    metrics: [{metric: full_valid_loss, op: '<', threshold: 2}]\n"))
    desired, warnings = load([repo])
    assert warnings == ()
    assert desired.root == repo
    assert desired.files == ("jobs/j.yaml",)
    (j,) = desired.jobs
    assert j.method is Method.DPO and j.account is None and j.base_model == "gpt-4.1-2025-04-14"
    assert (j.hyperparameters.n_epochs, j.hyperparameters.batch_size, j.hyperparameters.beta) == (
        2,
        None,
        0.2,
    )
    assert j.hyperparameters.learning_rate_multiplier == 1.0
    assert j.training_file == DataRef(
        path=(repo / "data" / "train.jsonl").resolve(), display="../data/train.jsonl"
    )
    assert j.training_file.path is not None and j.training_file.path.is_absolute()
    assert j.training_type is TrainingType.GLOBAL and j.seed == 7 and j.suffix == "bot"
    assert j.source.path.endswith("j.yaml") and j.source.line == 1
    (d,) = desired.deployments
    assert d.model == ModelRef(from_job="bot", checkpoint=2)
    assert d.sku is Sku.STANDARD and d.capacity == 1 and d.deletion_policy is DeletionPolicy.DELETE
    assert d.gates.metrics == (MetricGate("full_valid_loss", "<", 2.0),)
    lines = (repo / "jobs" / "j.yaml").read_text().splitlines()
    assert d.source.line == lines.index("kind: Deployment")  # the line before kind: is its apiVersion


def test_account_defaults_and_auth(repo: Path) -> None:
    (repo / "m.yaml").write_text(account("prod") + "  auth: {apiKeyFromEnv: MY_KEY}\n---\n" + job("bot"))
    desired, _ = load([repo / "m.yaml"])
    (a,) = desired.accounts
    assert a.management_endpoint == "https://management.azure.com"
    assert (a.auth.kind, a.auth.api_key_env) == ("apiKey", "MY_KEY")
    assert desired.jobs[0].account == "prod"  # the only Account is the default


def test_account_key_from_a_secret(repo: Path) -> None:
    (repo / "m.yaml").write_text(account("prod") + "  auth: {apiKeyFromSecret: {name: azure-openai}}\n")
    (a,) = load([repo / "m.yaml"])[0].accounts
    assert (a.auth.kind, a.auth.api_key_env) == ("apiKey", None)
    assert a.auth.api_key_secret == SecretKeyRef("azure-openai", "apiKey")


# -- cross-resource rules ------------------------------------------------------------------------


def test_duplicate_names_per_kind(repo: Path) -> None:
    found = problems(repo, job("bot"), job("bot"))
    d = only_error(found, "FineTuneJob 'bot' is already defined at ")
    assert d.message.endswith("m.yaml:1")
    assert d.line == line_in(repo, "name: bot", 2)


def test_same_name_in_different_kinds_is_fine(repo: Path) -> None:
    assert problems(repo, job("bot"), doc("Deployment", "bot", "  model: {fromJob: bot}\n")) == ()


def test_unknown_account_with_suggestion(repo: Path) -> None:
    found = problems(repo, account("production"), job("bot", "  account: prodution\n"))
    d = only_error(found, "No Account named 'prodution'. Did you mean 'production'?")
    assert d.line == line_in(repo, "account: prodution")


def test_account_required_with_two_accounts(repo: Path) -> None:
    found = problems(repo, account("a"), account("b"), job("bot"))
    only_error(found, "spec.account is required: there are 2 Accounts (a, b)")
    assert problems(repo, account("a"), account("b"), job("bot", "  account: b\n")) == ()


def test_unknown_from_job_with_suggestion(repo: Path) -> None:
    found = problems(repo, job("support-bot"), job("v2", source="  fromJob: suport-bot\n"))
    d = only_error(found, "No FineTuneJob named 'suport-bot'. Did you mean 'support-bot'?")
    assert d.line == line_in(repo, "fromJob: suport-bot")
    assert problems(repo, job("support-bot"), job("v2", source="  fromJob: support-bot\n")) == ()


def test_deployment_from_unknown_job(repo: Path) -> None:
    found = problems(repo, job("bot"), doc("Deployment", "d", "  model: {fromJob: bott}\n"))
    only_error(found, "No FineTuneJob named 'bott'. Did you mean 'bot'?")


def test_from_job_cycle_is_named(repo: Path) -> None:
    found = problems(repo, job("a", source="  fromJob: b\n"), job("b", source="  fromJob: c\n"),
                     job("c", source="  fromJob: a\n"))
    cycles = [d for d in found if "fromJob cycle: a -> b -> c -> a" in d.message]
    assert len(cycles) == 3
    assert cycles[0].line == line_in(repo, "fromJob: b")


def test_self_reference_is_a_cycle(repo: Path) -> None:
    only_error(problems(repo, job("a", source="  fromJob: a\n")), "fromJob cycle: a -> a")


def test_chain_is_fine(repo: Path) -> None:
    assert (
        problems(repo, job("a"), job("b", source="  fromJob: a\n"), job("c", source="  fromJob: b\n")) == ()
    )


def test_parent_in_other_account(repo: Path) -> None:
    found = problems(repo, account("x"), account("y"), job("a", "  account: x\n"),
                     job("b", "  account: y\n", source="  fromJob: a\n"))
    only_error(found, "FineTuneJob 'a' is in account x, this job in y")


def test_a_deployment_may_serve_a_model_trained_in_another_account(repo: Path) -> None:
    found = problems(repo, account("dev"), account("prod"), job("a", "  account: dev\n"),
                     doc("Deployment", "serve", "  account: prod\n  model: {fromJob: a}\n"))
    assert [d for d in found if d.severity == "error"] == []


def test_dpo_after_reinforcement(repo: Path) -> None:
    rft = ("  method:\n    type: reinforcement\n"
           "    grader: {type: python, source: 'def grade(s, i): return 1'}\n")
    found = problems(repo, job("a", rft, source="  baseModel: o4-mini-2025-04-16\n"),
                     job("b", "  method: {type: dpo}\n", source="  fromJob: a\n"))
    only_error(found, "cannot be trained further with method dpo")
    assert problems(repo, job("a"), job("b", "  method: {type: dpo}\n", source="  fromJob: a\n")) == ()


def test_method_and_model_family_warnings(repo: Path) -> None:
    rft = ("  method:\n    type: reinforcement\n"
           "    grader: {type: python, source: 'def grade(s, i): return 1'}\n")
    found = problems(repo, job("a", rft))
    assert [d.severity for d in found] == ["warning"]
    assert "reinforcement fine-tuning is offered for reasoning models" in found[0].message
    assert found[0].line == line_in(repo, "baseModel")
    found = problems(repo, job("a", source="  baseModel: o4-mini-2025-04-16\n"))
    assert [d.severity for d in found] == ["warning"] and "is a reasoning model" in found[0].message
    assert problems(repo, job("a", rft, source="  baseModel: o4-mini-2025-04-16\n")) == ()


def test_missing_data_file(repo: Path) -> None:
    found = problems(repo, job("a").replace("data/train.jsonl", "data/nope.jsonl"))
    d = only_error(found, "spec.trainingFile 'data/nope.jsonl' does not exist")
    assert d.line == line_in(repo, "trainingFile")


def test_missing_data_is_fine_without_check_data(repo: Path) -> None:
    (repo / "m.yaml").write_text(job("a").replace("data/train.jsonl", "data/nope.jsonl"))
    desired, _ = load([repo / "m.yaml"], check_data=False)
    assert desired.jobs[0].training_file.display == "data/nope.jsonl"


def test_data_path_is_a_folder(repo: Path) -> None:
    only_error(
        problems(repo, job("a").replace("data/train.jsonl", "data")), "spec.trainingFile 'data' is not a file"
    )


def test_dotdot_escape(repo: Path) -> None:
    inner = repo / "inner"
    inner.mkdir()
    (inner / ".git").mkdir()
    (inner / "m.yaml").write_text(job("a").replace("data/train.jsonl", "../data/train.jsonl"))
    with pytest.raises(ManifestError) as caught:
        load([inner / "m.yaml"])
    assert "points outside the repository root" in caught.value.diagnostics[0].message


def test_symlink_out_of_the_root(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.jsonl"
    outside.write_bytes((repo / "data" / "train.jsonl").read_bytes())
    os.symlink(outside, repo / "data" / "link.jsonl")
    found = problems(repo, job("a").replace("data/train.jsonl", "data/link.jsonl"))
    only_error(found, "is a symlink to")
    os.symlink(repo / "data" / "train.jsonl", repo / "data" / "inside.jsonl")
    assert problems(repo, job("a").replace("data/train.jsonl", "data/inside.jsonl")) == ()


def test_absolute_path_rejected(repo: Path) -> None:
    found = problems(repo, job("a").replace("data/train.jsonl", str(repo / "data" / "train.jsonl")))
    only_error(found, "must be a path relative to the manifest")


def test_url_must_be_https(repo: Path) -> None:
    found = problems(repo, job("a").replace("data/train.jsonl", "http://example.com/t.jsonl"))
    only_error(found, "spec.trainingFile must be an https URL or a relative path")
    assert problems(repo, job("a").replace("data/train.jsonl", "https://example.com/t.jsonl")) == ()


def test_checkpoint_beyond_epochs(repo: Path) -> None:
    parent = job("a", "  validationFile: data/valid.jsonl\n  method:\n    hyperparameters: {n_epochs: 3}\n")
    found = problems(repo, parent, doc("Deployment", "d", "  model: {fromJob: a, checkpoint: 4}\n"))
    d = only_error(found, "spec.model.checkpoint 4 is beyond the 3 epoch(s) of FineTuneJob 'a'")
    assert d.line == line_in(repo, "checkpoint: 4")
    assert problems(repo, parent, doc("Deployment", "d", "  model: {fromJob: a, checkpoint: 3}\n")) == ()
    # auto epochs: the service decides, nothing to check here
    assert problems(repo, job("a"), doc("Deployment", "d", "  model: {fromJob: a, checkpoint: 9}\n")) == ()


def test_checkpoint_older_than_the_kept_three(repo: Path) -> None:
    parent = job("a", "  method:\n    hyperparameters: {n_epochs: 5}\n")
    found = problems(repo, parent, doc("Deployment", "d", "  model: {fromJob: a, checkpoint: 2}\n"))
    only_error(found, "the service keeps only the last 3 checkpoints, epochs 3 to 5")


def test_validation_metric_gate_needs_validation_file(repo: Path) -> None:
    gates = "  gates:\n    metrics: [{metric: valid_loss, op: '<', threshold: 1}]\n"
    found = problems(repo, job("a"), doc("Deployment", "d", "  model: {fromJob: a}\n" + gates))
    only_error(found, "spec.gates.metrics[0] uses valid_loss, but FineTuneJob 'a' has no validationFile")
    with_validation = job("a", "  validationFile: data/valid.jsonl\n")
    assert problems(repo, with_validation, doc("Deployment", "d", "  model: {fromJob: a}\n" + gates)) == ()


def test_metric_gates_on_a_base_model(repo: Path) -> None:
    found = problems(
        repo,
        doc(
            "Deployment",
            "d",
            "  model: {name: gpt-4.1}\n  gates:\n"
            "    metrics: [{metric: train_loss, op: '<', threshold: 1}]\n",
        ),
    )
    only_error(found, "spec.gates.metrics need a fine-tuned model")


def test_eval_file_must_exist(repo: Path) -> None:
    found = problems(
        repo, job("a"), doc("Deployment", "d", "  model: {fromJob: a}\n  gates: {evalFile: data/e.jsonl}\n")
    )
    only_error(found, "spec.gates.evalFile 'data/e.jsonl' does not exist")


# -- YAML ----------------------------------------------------------------------------------------


def test_duplicate_keys_are_errors(repo: Path) -> None:
    d = only_error(
        problems(repo, job("a", "  seed: 1\n  seed: 2\n")), "duplicate key 'seed' (first defined at line 8)"
    )
    assert d.line == 9


def test_tabs_get_a_hint(repo: Path) -> None:
    d = only_error(problems(repo, job("a", "  method:\n\ttype: dpo\n")), "invalid YAML")
    assert d.hint is not None and "tabs" in d.hint


def test_alias_bomb_is_rejected_fast(repo: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    d = only_error(problems(repo, "\n".join(lines) + "\n"), "expands to more than")
    assert time.perf_counter() - started < 5
    assert d.line == 1


def test_binary_garbage(repo: Path) -> None:
    path = repo / "m.yaml"
    path.write_bytes(b"apiVersion: x\n\xff\xfe\x00garbage")
    with pytest.raises(ManifestError) as caught:
        load([path])
    assert "not UTF-8" in caught.value.diagnostics[0].message
    assert caught.value.diagnostics[0].line == 2


def test_empty_file_named_explicitly(repo: Path) -> None:
    only_error(problems(repo, "# nothing here\n"), "no resources in this file", whole_file=True)


def test_empty_documents_between_separators_are_skipped(repo: Path) -> None:
    assert problems(repo, "", job("a"), "\n", job("b")) == ()


def test_all_problems_across_files_sorted(repo: Path) -> None:
    (repo / "b.yaml").write_text(job("b", "  seed: -1\n"))
    (repo / "a.yaml").write_text(job("a", "  suffix: 'x y'\n  seed: -2\n"))
    with pytest.raises(ManifestError) as caught:
        load([repo])
    found = [(Path(d.path).name, d.line) for d in caught.value.diagnostics]
    assert found == [("a.yaml", 8), ("a.yaml", 9), ("b.yaml", 8)]


def test_folders_are_recursive_and_skip_other_yaml(repo: Path) -> None:
    (repo / "x" / "y").mkdir(parents=True)
    (repo / "x" / "y" / "deep.yml").write_text(job("deep").replace("data/", "../../data/"))
    (repo / "ci.yaml").write_text("on: push\njobs: {build: {runs-on: ubuntu-latest}}\n")
    (repo / "chart.yaml").write_text("{{ if .Values.x }}\nkind: ConfigMap\n{{ end }}\n")
    # not ours: its syntax is not our business
    (repo / "broken-other.yaml").write_text("kind: ConfigMap\nx: [\n")
    (repo / "flow.yaml").write_text('{"apiVersion": "tunekeeper.io/v1alpha1", "kind": "Deployment", '
                                    '"metadata": {"name": "flow"}, "spec": {"model": {"name": "gpt-4.1"}}}\n')
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "h.yaml").write_text(job("hidden"))
    desired, _ = load([repo])
    assert [j.name for j in desired.jobs] == ["deep"]
    assert [d.name for d in desired.deployments] == ["flow"]
    assert desired.files == ("flow.yaml", "x/y/deep.yml")


def test_find_root(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    assert find_root([tmp_path / "repo" / "a" / "b"]) == tmp_path / "repo"
    (tmp_path / "plain" / "x").mkdir(parents=True)
    (tmp_path / "plain" / "y").mkdir(parents=True)
    (tmp_path / "plain" / "y" / "m.yaml").write_text("")
    assert find_root([tmp_path / "plain" / "x", tmp_path / "plain" / "y" / "m.yaml"]) == tmp_path / "plain"
