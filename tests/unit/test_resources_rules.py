"""Every schema rule of Account, FineTuneJob and Deployment: a failing and a passing case each.

Each failing case asserts the message, the file and the line of the offending field; each
passing case asserts the manifest loads without errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import ManifestError
from tunekeeper.resources import load

HEADER = "apiVersion: tunekeeper.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n"


def manifest(kind: str, spec: str, name: str = "thing") -> str:
    return HEADER.format(kind=kind, name=name) + spec


def job(extra: str = "", base: str = "  baseModel: gpt-4.1-2025-04-14\n") -> str:
    return manifest("FineTuneJob", base + "  trainingFile: data/train.jsonl\n" + extra)


def deployment(extra: str) -> str:
    return (
        manifest("Deployment", extra, name="serve")
        + "---\n"
        + job("  validationFile: data/valid.jsonl\n  method:\n    hyperparameters: {n_epochs: 4}\n").replace(
            "name: thing", "name: trained"
        )
    )


def account(extra: str, base: str | None = None) -> str:
    base = (
        base
        if base is not None
        else (
            "  endpoint: https://contoso.openai.azure.com\n"
            "  subscriptionId: 00000000-0000-0000-0000-000000000000\n"
            "  resourceGroup: rg-ft\n"
            "  accountName: contoso\n"
        )
    )
    return manifest("Account", base + extra, name="prod")


def diagnostics_of(repo: Path, text: str) -> tuple[Diagnostic, ...]:
    path = repo / "m.yaml"
    path.write_text(text)
    try:
        _, warnings = load([path], root=repo)
    except ManifestError as exc:
        return exc.diagnostics
    return warnings


def line_of(text: str, marker: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in manifest")


# (id, manifest text, expected message fragment, marker on the offending line)
FAILING = [
    (
        "n_epochs-low",
        job("  method:\n    hyperparameters:\n      n_epochs: 0\n"),
        'spec.method.hyperparameters.n_epochs must be an integer from 1 to 50 or "auto", got 0',
        "n_epochs",
    ),
    (
        "n_epochs-high",
        job("  method:\n    hyperparameters:\n      n_epochs: 51\n"),
        "from 1 to 50",
        "n_epochs",
    ),
    (
        "n_epochs-text",
        job("  method:\n    hyperparameters:\n      n_epochs: many\n"),
        "got 'many'",
        "n_epochs",
    ),
    (
        "batch_size-low",
        job("  method:\n    hyperparameters:\n      batch_size: 0\n"),
        "batch_size must be an integer from 1 to 256",
        "batch_size",
    ),
    (
        "batch_size-high",
        job("  method:\n    hyperparameters:\n      batch_size: 257\n"),
        "from 1 to 256",
        "batch_size",
    ),
    (
        "lrm-zero",
        job("  method:\n    hyperparameters:\n      learning_rate_multiplier: 0\n"),
        "learning_rate_multiplier must be a number greater than 0 and at most 10",
        "learning_rate_multiplier",
    ),
    (
        "lrm-nan",
        job("  method:\n    hyperparameters:\n      learning_rate_multiplier: .nan\n"),
        (
            "spec.method.hyperparameters.learning_rate_multiplier must be a finite number, "
            "got not a number (NaN)"
        ),
        "learning_rate_multiplier",
    ),
    (
        "threshold-inf",
        deployment(
            "  model: {fromJob: trained}\n  gates:\n    metrics:\n"
            "      - {metric: valid_loss, op: '<', threshold: .inf}\n"
        ),
        "spec.gates.metrics[0].threshold must be a finite number, got an infinite number",
        "threshold",
    ),
    (
        "lrm-high",
        job("  method:\n    hyperparameters:\n      learning_rate_multiplier: 10.5\n"),
        "greater than 0 and at most 10",
        "learning_rate_multiplier",
    ),
    (
        "beta-zero",
        job("  method:\n    type: dpo\n    hyperparameters:\n      beta: 0\n"),
        "beta must be a number greater than 0 and at most 2",
        "beta",
    ),
    (
        "beta-high",
        job("  method:\n    type: dpo\n    hyperparameters:\n      beta: 2.5\n"),
        "at most 2",
        "beta",
    ),
    (
        "beta-not-dpo",
        job("  method:\n    type: supervised\n    hyperparameters:\n      beta: 0.1\n"),
        "spec.method.hyperparameters.beta is only for method type dpo",
        "beta",
    ),
    (
        "unknown-hyperparameter",
        job("  method:\n    hyperparameters:\n      n_epoch: 3\n"),
        "unknown field spec.method.hyperparameters.n_epoch",
        "n_epoch",
    ),
    (
        "method-type",
        job("  method:\n    type: sft\n"),
        "spec.method.type must be one of supervised, dpo, reinforcement, got 'sft'",
        "type: sft",
    ),
    (
        "grader-required",
        job("  method:\n    type: reinforcement\n"),
        "spec.method.grader is required for type reinforcement",
        "method:",
    ),
    (
        "grader-not-rft",
        job("  method:\n    grader: {type: python, source: 'def grade(s, i): return 1'}\n"),
        "spec.method.grader is only for method type reinforcement",
        "grader",
    ),
    (
        "grader-type",
        job("  method:\n    type: reinforcement\n    grader: {type: exact}\n"),
        "spec.method.grader.type must be one of string_check",
        "grader",
    ),
    (
        "grader-fields",
        job("  method:\n    type: reinforcement\n    grader:\n      type: string_check\n      input: x\n"),
        "spec.method.grader.reference is required for type string_check",
        "grader",
    ),
    (
        "grader-operation",
        job(
            "  method:\n    type: reinforcement\n    grader:\n      type: string_check\n"
            "      input: x\n      reference: y\n      operation: equals\n"
        ),
        "spec.method.grader.operation must be one of eq, ne, like, ilike",
        "operation",
    ),
    (
        "training-type",
        job("  trainingType: global\n"),
        "spec.trainingType must be one of Standard, Global, Developer, got 'global'",
        "trainingType",
    ),
    (
        "seed-negative",
        job("  seed: -1\n"),
        "spec.seed must be an integer from 0 to 2147483647, got -1",
        "seed",
    ),
    ("seed-big", job("  seed: 2147483648\n"), "spec.seed must be an integer from 0 to 2147483647", "seed"),
    ("seed-text", job("  seed: abc\n"), "spec.seed must be an integer, got 'abc'", "seed"),
    (
        "suffix-chars",
        job("  suffix: my suffix!\n"),
        "spec.suffix must be at most 40 characters of a-z A-Z 0-9 - _, got 'my suffix!'",
        "suffix",
    ),
    (
        "suffix-long",
        job("  suffix: " + "a" * 41 + "\n"),
        "spec.suffix must be at most 40 characters",
        "suffix",
    ),
    (
        "allow-replacement",
        job("  allowReplacement: maybe\n"),
        "spec.allowReplacement must be true or false, got 'maybe'",
        "allowReplacement",
    ),
    (
        "training-required",
        manifest("FineTuneJob", "  baseModel: gpt-4.1-2025-04-14\n"),
        "spec.trainingFile is required",
        "spec:",
    ),
    (
        "training-list",
        job("", base="  baseModel: gpt-4.1-2025-04-14\n").replace(
            "trainingFile: data/train.jsonl", "trainingFile: [data/train.jsonl]"
        ),
        "spec.trainingFile must be a string, got a list",
        "trainingFile",
    ),
    (
        "base-and-from",
        job("  fromJob: other\n"),
        "spec sets both baseModel and fromJob; set exactly one",
        "fromJob",
    ),
    ("base-or-from", job(base=""), "spec needs baseModel", "spec:"),
    (
        "base-model-shape",
        job(base="  baseModel: 'gpt 4'\n"),
        "spec.baseModel must be a model id",
        "baseModel",
    ),
    (
        "typo-did-you-mean",
        job("  validatonFile: data/valid.jsonl\n"),
        "unknown field spec.validatonFile",
        "validatonFile",
    ),
    (
        "name-shape",
        job().replace("name: thing", "name: Bad_Name"),
        "metadata.name must be a DNS-1123 name",
        "name: Bad_Name",
    ),
    (
        "name-long",
        job().replace("name: thing", "name: " + "a" * 64),
        "metadata.name must be a DNS-1123",
        "name: aaa",
    ),
    (
        "labels-values",
        job().replace("  name: thing\n", "  name: thing\n  labels: {tier: 1}\n"),
        "metadata.labels.tier must be a string, got 1",
        "labels",
    ),
    (
        "metadata-unknown",
        job().replace("  name: thing\n", "  name: thing\n  nmespace: x\n"),
        "unknown field metadata.nmespace",
        "nmespace",
    ),
    (
        "api-version",
        job().replace("v1alpha1", "v1"),
        "apiVersion must be tunekeeper.io/v1alpha1, got 'tunekeeper.io/v1'",
        "apiVersion",
    ),
    (
        "kind-typo",
        job().replace("kind: FineTuneJob", "kind: FinetuneJob"),
        "kind must be one of Account, FineTuneJob, Deployment, got 'FinetuneJob'",
        "kind",
    ),
    ("kind-missing", job().replace("kind: FineTuneJob\n", ""), "kind is required", "apiVersion"),
    (
        "spec-list",
        HEADER.format(kind="FineTuneJob", name="x") + "  - baseModel: gpt-4.1\n",
        "spec must be a mapping (key: value pairs), got a list",
        "baseModel",
    ),
    ("not-a-mapping", "just text\n", "a manifest document must be a mapping", "just text"),
    # Account
    (
        "endpoint-http",
        account("").replace("https://contoso", "http://contoso"),
        "spec.endpoint must use https, got 'http://contoso.openai.azure.com'",
        "endpoint",
    ),
    (
        "endpoint-scheme",
        account("").replace("https://contoso.openai.azure.com", "contoso.openai.azure.com"),
        "spec.endpoint must be a URL like https://",
        "endpoint",
    ),
    (
        "endpoint-credentials",
        account("").replace("https://contoso", "https://user:secret@contoso"),
        "spec.endpoint must not contain credentials",
        "endpoint",
    ),
    (
        "management-http",
        account("  managementEndpoint: http://management.azure.com\n"),
        "spec.managementEndpoint must use https",
        "managementEndpoint",
    ),
    (
        "loopback-without-management",
        account("").replace("https://contoso.openai.azure.com", "http://127.0.0.1:8080"),
        "an http (loopback emulator) endpoint needs spec.managementEndpoint too",
        "endpoint",
    ),
    (
        "subscription",
        account("").replace("00000000-0000-0000-0000-000000000000", "my-subscription"),
        "spec.subscriptionId must be a subscription id (a GUID), got 'my-subscription'",
        "subscriptionId",
    ),
    (
        "resource-group",
        account("").replace("rg-ft", "rg.ft."),
        "spec.resourceGroup must be 1-90",
        "resourceGroup",
    ),
    (
        "account-name-short",
        account("").replace("accountName: contoso", "accountName: c"),
        "spec.accountName must be 2-64 characters",
        "accountName",
    ),
    (
        "account-name-chars",
        account("").replace("accountName: contoso", "accountName: -contoso"),
        "spec.accountName must be 2-64 characters",
        "accountName",
    ),
    (
        "account-required",
        account("", base="  endpoint: https://contoso.openai.azure.com\n"),
        "spec.subscriptionId is required",
        "spec:",
    ),
    (
        "auth-type",
        account("  auth:\n    type: key\n"),
        "spec.auth.type must be one of entra, apiKey",
        "type: key",
    ),
    (
        "auth-apikey-env-required",
        account("  auth:\n    type: apiKey\n"),
        "spec.auth.apiKeyFromEnv or spec.auth.apiKeyFromSecret is required for type apiKey",
        "auth:",
    ),
    (
        "auth-both-keys",
        account("  auth:\n    apiKeyFromEnv: KEY\n    apiKeyFromSecret: {name: s}\n"),
        "spec.auth sets apiKeyFromEnv and apiKeyFromSecret; set only one",
        "apiKeyFromSecret",
    ),
    (
        "auth-entra-with-secret",
        account("  auth:\n    type: entra\n    apiKeyFromSecret: {name: s}\n"),
        "spec.auth.apiKeyFromSecret cannot be used with auth type entra",
        "apiKeyFromSecret",
    ),
    (
        "auth-entra-with-key",
        account("  auth:\n    type: entra\n    apiKeyFromEnv: KEY\n"),
        "spec.auth.apiKeyFromEnv cannot be used with auth type entra",
        "apiKeyFromEnv",
    ),
    (
        "auth-env-name",
        account("  auth:\n    apiKeyFromEnv: 1KEY\n"),
        "spec.auth.apiKeyFromEnv must be an environment variable name",
        "apiKeyFromEnv",
    ),
    # Deployment
    (
        "sku-case",
        deployment("  model: {fromJob: trained}\n  sku:\n    name: standard\n"),
        "spec.sku.name must be one of Standard, GlobalStandard",
        "name: standard",
    ),
    (
        "sku-capacity",
        deployment("  model: {fromJob: trained}\n  sku:\n    name: Standard\n    capacity: 0\n"),
        "spec.sku.capacity must be an integer from 1 to 1000000, got 0",
        "capacity",
    ),
    ("model-required", deployment("  sku: {name: Standard}\n"), "spec.model is required", "spec:"),
    (
        "model-both",
        deployment("  model:\n    fromJob: trained\n    name: gpt-4.1\n"),
        "spec.model sets both fromJob and name",
        "name: gpt-4.1",
    ),
    ("model-neither", deployment("  model:\n    checkpoint: best\n"), "spec.model needs fromJob", "model:"),
    (
        "model-version-with-job",
        deployment("  model:\n    fromJob: trained\n    version: '1'\n"),
        "spec.model.version is only for base models",
        "version",
    ),
    (
        "model-checkpoint-with-name",
        deployment("  model:\n    name: gpt-4.1\n    checkpoint: best\n"),
        "spec.model.checkpoint is only for fromJob",
        "checkpoint",
    ),
    (
        "checkpoint-zero",
        deployment("  model:\n    fromJob: trained\n    checkpoint: 0\n"),
        "spec.model.checkpoint must be final or best or an integer from 1 to 50, got 0",
        "checkpoint",
    ),
    (
        "checkpoint-word",
        deployment("  model:\n    fromJob: trained\n    checkpoint: latest\n"),
        "got 'latest'",
        "checkpoint",
    ),
    (
        "version-number",
        deployment("  model:\n    name: gpt-35-turbo\n    version: 0125\n"),
        "spec.model.version must be a string, got 85 (written 0125)",
        "version",
    ),
    (
        "gate-metric",
        deployment(
            "  model: {fromJob: trained}\n  gates:\n    metrics:\n"
            "      - {metric: valid_los, op: '<', threshold: 1}\n"
        ),
        "spec.gates.metrics[0].metric must be one of train_loss",
        "valid_los",
    ),
    (
        "gate-op",
        deployment(
            "  model: {fromJob: trained}\n  gates:\n    metrics:\n"
            "      - {metric: valid_loss, op: '==', threshold: 1}\n"
        ),
        "spec.gates.metrics[0].op must be one of <, <=, >, >=",
        "==",
    ),
    (
        "gate-threshold",
        deployment(
            "  model: {fromJob: trained}\n  gates:\n    metrics:\n"
            "      - {metric: valid_loss, op: '<', threshold: low}\n"
        ),
        "spec.gates.metrics[0].threshold must be a number, got 'low'",
        "low",
    ),
    (
        "gate-required",
        deployment("  model: {fromJob: trained}\n  gates:\n    metrics:\n      - {metric: valid_loss}\n"),
        "spec.gates.metrics[0].op is required",
        "valid_loss",
    ),
    (
        "deletion-policy",
        deployment("  model: {fromJob: trained}\n  deletionPolicy: Keep\n"),
        "spec.deletionPolicy must be one of Delete, Retain, got 'Keep'",
        "deletionPolicy",
    ),
    (
        "eval-url",
        deployment("  model: {fromJob: trained}\n  gates:\n    evalFile: https://x.example/e.jsonl\n"),
        "spec.gates.evalFile must be a path in the repository",
        "evalFile",
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment", "marker"), [c[1:] for c in FAILING], ids=[c[0] for c in FAILING]
)
def test_failing_rule_names_file_line_and_field(repo: Path, text: str, fragment: str, marker: str) -> None:
    found = diagnostics_of(repo, text)
    matching = [d for d in found if fragment in d.message and d.severity == "error"]
    assert matching, [d.render() for d in found]
    d = matching[0]
    assert d.path.endswith("m.yaml")
    assert d.line == line_of(text, marker), d.render()
    assert d.column >= 1
    assert d.hint, d.render()
    assert d.render().startswith(f"{d.path}:{d.line}:{d.column}: error: ")


def test_unknown_field_suggests_the_close_name(repo: Path) -> None:
    found = diagnostics_of(repo, job("  validatonFile: data/valid.jsonl\n"))
    assert [d.hint for d in found] == ["did you mean 'validationFile'?"]


def test_sku_in_other_case_suggests_arm_spelling(repo: Path) -> None:
    found = diagnostics_of(
        repo, deployment("  model: {fromJob: trained}\n  sku:\n    name: globalstandard\n")
    )
    assert found[0].hint == "did you mean 'GlobalStandard'? Names are case-sensitive"


def test_every_problem_is_reported_sorted(repo: Path) -> None:
    text = job("  seed: -1\n  suffix: 'no spaces please'\n  method:\n    hyperparameters: {n_epochs: 0}\n")
    found = diagnostics_of(repo, text)
    assert [d.line for d in found] == sorted(d.line for d in found)
    assert {d.field_path for d in found} == {
        "spec.seed",
        "spec.suffix",
        "spec.method.hyperparameters.n_epochs",
    }


PASSING = [
    ("n_epochs-bounds", job("  method:\n    hyperparameters: {n_epochs: 50, batch_size: 256}\n")),
    (
        "n_epochs-auto",
        job(
            "  method:\n    hyperparameters: {n_epochs: auto, batch_size: auto, "
            "learning_rate_multiplier: auto}\n"
        ),
    ),
    ("lrm-small", job("  method:\n    hyperparameters: {learning_rate_multiplier: 0.01}\n")),
    ("lrm-max", job("  method:\n    hyperparameters: {learning_rate_multiplier: 10}\n")),
    ("dpo-beta", job("  method:\n    type: dpo\n    hyperparameters: {beta: 2}\n")),
    ("dpo-beta-auto", job("  method:\n    type: dpo\n    hyperparameters: {beta: auto}\n")),
    (
        "rft-grader",
        job(
            "  method:\n    type: reinforcement\n    grader:\n      type: string_check\n"
            "      input: '{{sample.output_text}}'\n      reference: '{{item.answer}}'\n"
            "      operation: eq\n",
            base="  baseModel: o4-mini-2025-04-16\n",
        ),
    ),
    (
        "rft-multi",
        job(
            "  method:\n    type: reinforcement\n    grader:\n      type: multi\n"
            "      calculate_output: a\n      graders:\n        a: {type: python, source: 'x'}\n",
            base="  baseModel: o4-mini-2025-04-16\n",
        ),
    ),
    ("training-types", job("  trainingType: Developer\n")),
    ("seed-bounds", job("  seed: 0\n")),
    ("seed-max", job("  seed: 2147483647\n")),
    ("suffix-40", job("  suffix: " + "a-Z_9" * 8 + "\n")),
    ("allow-replacement", job("  allowReplacement: true\n")),
    (
        "https-training",
        job(base="  baseModel: gpt-4.1-2025-04-14\n").replace(
            "data/train.jsonl", "https://example.blob.core.windows.net/d/train.jsonl?sv=1"
        ),
    ),
    (
        "labels",
        job().replace("  name: thing\n", "  name: thing\n  labels: {team: a}\n  annotations: {x: y}\n"),
    ),
    ("name-63", job().replace("name: thing", "name: " + "a" * 63)),
    (
        "account-loopback-http",
        account("  managementEndpoint: http://127.0.0.1:8080\n").replace(
            "https://contoso.openai.azure.com", "http://127.0.0.1:8080"
        ),
    ),
    ("account-localhost", account("  managementEndpoint: http://localhost:8080\n")),
    ("account-apikey", account("  auth:\n    apiKeyFromEnv: AZURE_OPENAI_API_KEY\n")),
    ("account-apikey-typed", account("  auth:\n    type: apiKey\n    apiKeyFromEnv: KEY\n")),
    ("account-entra", account("  auth:\n    type: entra\n")),
    (
        "account-name-64",
        account("").replace("accountName: contoso", "accountName: " + "a.b_c-" * 10 + "abcd"),
    ),
    (
        "deployment-skus",
        deployment("  model: {fromJob: trained}\n  sku: {name: GlobalProvisionedManaged, capacity: 15}\n"),
    ),
    ("deployment-base", deployment("  model: {name: gpt-4.1, version: '2025-04-14'}\n")),
    ("deployment-unquoted-date", deployment("  model: {name: gpt-4.1, version: 2025-04-14}\n")),
    (
        "deployment-gates",
        deployment(
            "  model: {fromJob: trained, checkpoint: best}\n  gates:\n    metrics:\n"
            "      - {metric: full_valid_loss, op: '<=', threshold: 1.5}\n"
            "    evalFile: data/valid.jsonl\n  deletionPolicy: Retain\n"
        ),
    ),
    ("deployment-epoch", deployment("  model: {fromJob: trained, checkpoint: 4}\n")),
    ("yaml-merge-key", job("  method:\n    <<: {type: dpo}\n    hyperparameters: {beta: 0.5}\n")),
]


@pytest.mark.parametrize("text", [c[1] for c in PASSING], ids=[c[0] for c in PASSING])
def test_passing_rule(repo: Path, text: str) -> None:
    found = diagnostics_of(repo, text)
    assert not [d for d in found if d.severity == "error"], [d.render() for d in found]
