"""Checks across resources: unique names, references that resolve, no fromJob cycles, and the
rules that need two resources at once (a checkpoint beyond the job's epochs, gates on metrics a
job cannot produce, a continued model in another account).

The loader calls :func:`check` once all documents are built; it returns the specs with their
account defaulted (the only Account, or None for the embedded emulator) plus diagnostics.

Must not: re-check single-resource rules (schema and ``_build.py`` did), read files, or call out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tunekeeper.diagnostics import Diagnostic, closest
from tunekeeper.resources._build import Origin, Spec
from tunekeeper.resources.specs import AccountSpec, DeploymentSpec, FineTuneJobSpec, Method

KEPT_CHECKPOINTS = 3  # Azure OpenAI keeps the checkpoints of the last three epochs
VALIDATION_METRICS = frozenset({"valid_loss", "validation_mean_token_accuracy", "full_valid_loss",
                                "full_valid_mean_token_accuracy"})


@dataclass(frozen=True, slots=True)
class Built:
    kind: str
    spec: Spec
    origin: Origin


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = closest(name, candidates)
    return f" Did you mean {close!r}?" if close else ""


def check(built: Sequence[Built]) -> tuple[list[Built], list[Diagnostic]]:
    out: list[Diagnostic] = []
    unique: list[Built] = []
    seen: dict[tuple[str, str], Built] = {}
    for item in built:
        key = (item.kind, item.spec.name)
        if key in seen:
            first = seen[key].origin
            out.append(item.origin.at(("metadata", "name"),
                                      f"{item.kind} {item.spec.name!r} is already defined at "
                                      f"{first.display}:{first.document.start.line}",
                                      "names are unique per kind; rename one of them", code="TK-X001"))
            continue
        seen[key] = item
        unique.append(item)

    accounts = [b for b in unique if b.kind == "Account"]
    jobs = {b.spec.name: b for b in unique if b.kind == "FineTuneJob"}
    account_names = [a.spec.name for a in accounts]

    resolved: list[Built] = []
    for item in unique:
        if isinstance(item.spec, AccountSpec):
            resolved.append(item)
            continue
        account = item.spec.account
        if account is not None and account not in account_names:
            hint = (
                f"define an Account named {account!r}, or remove spec.account to use the embedded emulator"
                if not accounts
                else f"Accounts defined: {', '.join(sorted(account_names))}"
            )
            out.append(item.origin.at(("spec", "account"),
                                      f"No Account named {account!r}.{_did_you_mean(account, account_names)}",
                                      hint, code="TK-X002"))
        elif account is None and len(accounts) == 1:
            item = dataclasses.replace(
                item, spec=dataclasses.replace(item.spec, account=accounts[0].spec.name)
            )
        elif account is None and len(accounts) > 1:
            out.append(
                item.origin.at(
                    ("spec",),
                    f"spec.account is required: there are {len(accounts)} Accounts "
                    f"({', '.join(sorted(account_names))})",
                    "add account: <name> to say where this lives",
                    key=True,
                    code="TK-X003",
                )
            )
        resolved.append(item)

    jobs = {b.spec.name: b for b in resolved if b.kind == "FineTuneJob"}
    job_names = sorted(jobs)
    for item in resolved:
        spec = item.spec
        if isinstance(spec, FineTuneJobSpec) and spec.base_model is not None:
            out += _check_method_family(item, spec, spec.base_model)
        if isinstance(spec, FineTuneJobSpec) and spec.from_job is not None:
            out += _check_parent(item, spec, jobs, job_names, account_names)
        if isinstance(spec, DeploymentSpec):
            out += _check_deployment(item, spec, jobs, job_names, account_names)
    out += _check_cycles(jobs)
    return resolved, out


def _is_reasoning_model(model: str) -> bool:
    """o1, o3, o4-mini, ...: the o-series reasoning models."""
    return len(model) > 1 and model[0] == "o" and model[1].isdigit()


def _check_method_family(item: Built, spec: FineTuneJobSpec, model: str) -> list[Diagnostic]:
    """What is known for sure about model families; the service has the final word on the rest."""
    if spec.method is Method.REINFORCEMENT and not _is_reasoning_model(model):
        return [item.origin.at(("spec", "baseModel"),
                               f"reinforcement fine-tuning is offered for reasoning models (such as "
                               f"o4-mini-2025-04-16); {model} will probably be refused",
                               "use a reasoning model, or method supervised / dpo", severity="warning",
                               code="TK-X020")]
    if spec.method is not Method.REINFORCEMENT and _is_reasoning_model(model):
        return [item.origin.at(("spec", "baseModel"),
                               f"{model} is a reasoning model: it is fine-tuned with method reinforcement, "
                               f"not {spec.method.value}",
                               "set spec.method.type: reinforcement with a grader, or choose a gpt model",
                               severity="warning", code="TK-X020")]
    return []


def _known(account: str | None, accounts: Sequence[str]) -> bool:
    return account is None or account in accounts


def _check_parent(item: Built, spec: FineTuneJobSpec, jobs: dict[str, Built],
                  job_names: list[str], accounts: Sequence[str]) -> list[Diagnostic]:
    assert spec.from_job is not None
    parent = jobs.get(spec.from_job)
    if parent is None:
        return [
            item.origin.at(
                ("spec", "fromJob"),
                f"No FineTuneJob named {spec.from_job!r}.{_did_you_mean(spec.from_job, job_names)}",
                "fromJob names another FineTuneJob in these manifests",
                code="TK-X004",
            )
        ]
    out: list[Diagnostic] = []
    parent_spec = parent.spec
    assert isinstance(parent_spec, FineTuneJobSpec)
    if (
        parent_spec.account != spec.account
        and _known(spec.account, accounts)
        and _known(parent_spec.account, accounts)
    ):
        out.append(
            item.origin.at(
                ("spec", "fromJob"),
                f"FineTuneJob {spec.from_job!r} is in account {parent_spec.account or '(emulator)'}, "
                f"this job in {spec.account or '(emulator)'}",
                "continuous fine-tuning needs the parent's model in the same account",
                code="TK-X005",
            )
        )
    if parent_spec.method is Method.REINFORCEMENT and spec.method is not Method.REINFORCEMENT:
        out.append(
            item.origin.at(
                ("spec", "fromJob"),
                f"FineTuneJob {spec.from_job!r} is a reinforcement fine-tuned (reasoning) model; "
                f"it cannot be trained further with method {spec.method.value}",
                "continue it with method type reinforcement, or start from a base model",
                code="TK-X006",
            )
        )
    return out


def _check_deployment(item: Built, spec: DeploymentSpec, jobs: dict[str, Built],
                      job_names: list[str], accounts: Sequence[str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if spec.model.from_job is None:
        if spec.gates.metrics:
            out.append(
                item.origin.at(
                    ("spec", "gates", "metrics"),
                    "spec.gates.metrics need a fine-tuned model: a base model has no results.csv",
                    "remove the metric gates, or deploy fromJob",
                    code="TK-X010",
                )
            )
        return out
    job = jobs.get(spec.model.from_job)
    if job is None:
        name = spec.model.from_job
        return [item.origin.at(("spec", "model", "fromJob"),
                               f"No FineTuneJob named {name!r}.{_did_you_mean(name, job_names)}",
                               "spec.model.fromJob names a FineTuneJob in these manifests", code="TK-X004")]
    job_spec = job.spec
    assert isinstance(job_spec, FineTuneJobSpec)
    # A Deployment may serve a model trained in another declared Account (ARM deploys it with
    # properties.model.source); only the embedded emulator and a declared Account cannot mix.
    if (
        job_spec.account != spec.account
        and (job_spec.account is None or spec.account is None)
        and _known(spec.account, accounts)
        and _known(job_spec.account, accounts)
    ):
        out.append(
            item.origin.at(
                ("spec", "model", "fromJob"),
                f"FineTuneJob {job_spec.name!r} is in account {job_spec.account or '(emulator)'}, "
                f"this Deployment in {spec.account or '(emulator)'}",
                "deploy a fine-tuned model in the account that trained it",
                code="TK-X011",
            )
        )
    checkpoint = spec.model.checkpoint
    epochs = job_spec.hyperparameters.n_epochs
    if isinstance(checkpoint, int) and epochs is not None and checkpoint > epochs:
        out.append(item.origin.at(("spec", "model", "checkpoint"),
                                  f"spec.model.checkpoint {checkpoint} is beyond the {epochs} epoch(s) of "
                                  f"FineTuneJob {job_spec.name!r}",
                                  f"choose an epoch from 1 to {epochs}, final or best", code="TK-X012"))
    elif isinstance(checkpoint, int) and epochs is not None and checkpoint <= epochs - KEPT_CHECKPOINTS:
        out.append(
            item.origin.at(
                ("spec", "model", "checkpoint"),
                f"spec.model.checkpoint {checkpoint} will not exist: the service keeps only the "
                f"last {KEPT_CHECKPOINTS} checkpoints, epochs {epochs - KEPT_CHECKPOINTS + 1} to "
                f"{epochs} of FineTuneJob {job_spec.name!r}",
                f"choose an epoch from {epochs - KEPT_CHECKPOINTS + 1} to {epochs}, final or best",
                code="TK-X014",
            )
        )
    if job_spec.validation_file is None:
        for index, gate in enumerate(spec.gates.metrics):
            if gate.metric in VALIDATION_METRICS:
                out.append(item.origin.at(("spec", "gates", "metrics", index, "metric"),
                                          f"spec.gates.metrics[{index}] uses {gate.metric}, but FineTuneJob "
                                          f"{job_spec.name!r} has no validationFile",
                                          "add a validationFile to the job, or gate on train_loss / "
                                          "train_mean_token_accuracy", code="TK-X013"))
    return out


def _check_cycles(jobs: dict[str, Built]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    reported: set[str] = set()
    for start in sorted(jobs):
        chain: list[str] = []
        current: str | None = start
        while current is not None and current in jobs and current not in chain:
            chain.append(current)
            spec = jobs[current].spec
            assert isinstance(spec, FineTuneJobSpec)
            current = spec.from_job
        if current is None or current not in chain:
            continue
        cycle = chain[chain.index(current):]
        if reported.intersection(cycle):
            continue
        reported.update(cycle)
        text = " -> ".join([*cycle, cycle[0]])
        for name in cycle:
            out.append(
                jobs[name].origin.at(
                    ("spec", "fromJob"),
                    f"fromJob cycle: {text}",
                    "a chain of fromJob must end at a job with baseModel",
                    code="TK-X007",
                )
            )
    return out
