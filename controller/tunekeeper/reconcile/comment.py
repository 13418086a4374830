"""The plan as a pull-request comment: ``tunekeeper plan -o markdown``.

A reviewer must see, per account, what will be uploaded, trained (with the examples, tokens,
epochs and the estimated cost from the price table), deployed (with the hourly hosting cost),
deleted, which manifest fields each replacement changes, what the promotion gates say where it
is known, what is blocked and why, and the warnings of the local checks. On an error the comment
is the error (file:line and hint), never an empty plan.

Pure: ``render_comment`` builds text from values the CLI gathered (the plan, the manifests, the
dataset figures, the price table, the status rows of the same observation). The text is
deterministic for the same inputs: no time, no job or file ids that the service picks (a
model is named by the FineTuneJob that made it), so a committed example stays current.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tunekeeper.datasets import DatasetStats
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.reconcile.costs import Estimate, PriceTable, hosting_cost, money, training_cost
from tunekeeper.reconcile.model import (
    Action,
    ActionKind,
    DeploymentPayload,
    DeploymentRefPayload,
    FilePayload,
    JobPayload,
    JobRefPayload,
    ModelDeletePayload,
    Plan,
    Reason,
    redact_url,
)
from tunekeeper.reconcile.render import summary
from tunekeeper.reconcile.status import ResourceStatus
from tunekeeper.resources.specs import DeploymentSpec, Desired, FineTuneJobSpec

MARKER = "<!-- tunekeeper plan -->"  # lets CI find its own comment again and update it
_TRAIN_HEADER = ("| | FineTuneJob | base model | examples | tokens | epochs | billed tokens "
                 "| est. cost | why |")



@dataclass(frozen=True, slots=True)
class CommentFacts:
    """Everything the comment shows besides the plan; gathered by the CLI from the same run."""

    desired: Desired
    # training file (as the manifest names it, ``DataRef.display``) -> its figures
    datasets: Mapping[str, DatasetStats] = field(default_factory=dict)
    prices: PriceTable | None = None
    statuses: Sequence[ResourceStatus] = ()  # of the observation the plan was made from
    replaced: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # FineTuneJob -> changed fields
    warnings: Sequence[Diagnostic] = ()
    account_names: Mapping[str, str] = field(default_factory=dict)  # account -> "accountName, resource group"


def render_comment(plan: Plan, facts: CommentFacts) -> str:
    """The whole comment, in Markdown."""
    jobs = {j.name: j for j in facts.desired.jobs}
    deployments = {d.name: d for d in facts.desired.deployments}
    rows = {(r.kind, r.name): r for r in facts.statuses}
    training_total: list[Estimate] = []
    hosting_total: list[Estimate] = []
    sections: list[str] = []
    accounts = sorted({a.account for a in plan.actions} | {b.account for b in plan.blocked})
    for account in accounts:
        actions = [a for a in plan.actions if a.account == account]
        lines = [f"### Account `{account}`" + (f" ({facts.account_names[account]})"
                                               if account in facts.account_names else "")]
        uploads = [a for a in actions if a.kind in (ActionKind.UPLOAD_FILE, ActionKind.IMPORT_FILE)]
        if uploads:
            lines += ["", "**Upload**", "", "| | file | from | sha256 |", "|---|---|---|---|"]
            for a in uploads:
                p = a.payload
                assert isinstance(p, FilePayload)
                source = p.path or (redact_url(p.url) if p.url else p.display)
                lines.append(f"| `{_symbol(a)}` | `{p.name}` | `{_md(source)}` | `{p.digest[:12]}…` |")
        trains = [a for a in actions if a.kind is ActionKind.CREATE_JOB]
        if trains:
            lines += ["", "**Train**", "", _TRAIN_HEADER, "|---|---|---|---|---|---|---|---|---|"]
            for a in trains:
                line, estimate = _train_row(a, jobs, facts)
                lines.append(line)
                if estimate is not None:
                    training_total.append(estimate)
        deploys = [a for a in actions
                   if a.kind in (ActionKind.CREATE_DEPLOYMENT, ActionKind.UPDATE_DEPLOYMENT)]
        if deploys:
            lines += ["", "**Deploy**", "",
                      "| | Deployment | model | sku | hosting / hour | gates | why |",
                      "|---|---|---|---|---|---|---|"]
            for a in deploys:
                line, estimate = _deploy_row(a, deployments, jobs, rows, facts)
                lines.append(line)
                if estimate is not None and a.kind is ActionKind.CREATE_DEPLOYMENT:
                    hosting_total.append(estimate)
        deletes = [a for a in actions if a.kind in (ActionKind.DELETE_DEPLOYMENT, ActionKind.DELETE_MODEL,
                                                    ActionKind.CANCEL_JOB, ActionKind.DELETE_FILE)]
        if deletes:
            lines += ["", "**Delete**", "", "| | what | why |", "|---|---|---|"]
            lines += [f"| `{_symbol(a)}` | {_deleted(a)} | {a.reason.value} |" for a in deletes]
        waits = [a for a in actions if not a.kind.changes and a.kind is not ActionKind.EVALUATE_MODEL]
        if waits:
            lines += ["", "**In progress** (nothing to do but wait): "
                      + ", ".join(f"`{a.target}` ({a.reason.value})" for a in waits)]
        blocked = [b for b in plan.blocked if b.account == account]
        if blocked:
            lines += ["", "**Blocked**", ""]
            lines += [f"- `{b.target}`: {b.reason.value}. {_md(b.message)}" for b in blocked]
        sections.append("\n".join(lines))

    head = [MARKER, "## tunekeeper plan", "", f"**{summary(plan)}**"]
    costs = _totals(training_total, hosting_total)
    if costs:
        head += ["", costs]
    body = head + ([""] + ["\n\n".join(sections)] if sections else [])
    if plan.warnings or plan.notes:
        body += ["", "**Notes**", ""]
        body += [f"- ⚠️ {_md(w)}" for w in plan.warnings] + [f"- {_md(n)}" for n in plan.notes]
    if facts.warnings:
        body += ["", f"<details><summary>Warnings ({len(facts.warnings)})</summary>", "", "```"]
        body += [d.render().replace("\n  hint:", "\n    hint:") for d in sorted(facts.warnings)]
        body += ["```", "", "</details>"]
    if facts.prices is not None and (training_total or hosting_total):
        body += ["", (f"<sub>Costs are estimates from {_md(facts.prices.citation)}; Azure bills what its "
                     "meters count.</sub>")]
    return "\n".join(body) + "\n"


def render_error_comment(message: str, diagnostics: Sequence[Diagnostic] = (),
                         hint: str | None = None) -> str:
    """The comment when no plan could be made: the error, with file:line, in place of the plan."""
    lines = [MARKER, "## tunekeeper plan", "", "**The plan could not be made.** Nothing will be applied.", "",
             "```"]
    if diagnostics:
        lines += [d.render() for d in sorted(diagnostics)]
    else:
        lines.append(f"error: {message}")
    if hint:
        lines.append(f"  hint: {hint}")
    lines.append("```")
    return "\n".join(lines) + "\n"


# -- rows ------------------------------------------------------------------------------------------------
def _train_row(action: Action, jobs: Mapping[str, FineTuneJobSpec],
               facts: CommentFacts) -> tuple[str, Estimate | None]:
    p = action.payload
    assert isinstance(p, JobPayload)
    name = action.target.name
    spec = jobs.get(name)
    stats = facts.datasets.get(str(spec.training_file.path)) if spec is not None else None
    base = _base_model(name, jobs)
    kind = (p.training_type.value if p.training_type else "Standard")
    model = f"{base or p.model or '?'} ({p.method.value}, {kind})"
    why = action.reason.value
    if action.reason is Reason.REQUIRES_NEW_TRAINING:
        fields = facts.replaced.get(name, ())
        why = "replaces the current model: " + (", ".join(f"`{f}`" for f in fields) + " changed" if fields
                                                 else "the spec changed")
    if stats is None:
        return (f"| `{_symbol(action)}` | `{name}` | {model} | - | - | - | - | - | {why} |", None)
    epochs = p.hyperparameters.n_epochs or stats.epochs
    billed = stats.tokens * epochs
    approx = "" if stats.tokens_exact else "~"
    estimate = (training_cost(facts.prices, base, kind, billed) if facts.prices is not None else None)
    cost = estimate.text() if estimate is not None else "-"
    auto = "" if p.hyperparameters.n_epochs else " (auto)"
    return ((f"| `{_symbol(action)}` | `{name}` | {model} | {stats.examples:,} | {approx}{stats.tokens:,} | "
            f"{epochs}{auto} | {approx}{billed:,} | {cost} | {why} |"), estimate)


def _deploy_row(
    action: Action, deployments: Mapping[str, DeploymentSpec], jobs: Mapping[str, FineTuneJobSpec],
    rows: Mapping[tuple[str, str], ResourceStatus], facts: CommentFacts,
) -> tuple[str, Estimate | None]:
    p = action.payload
    assert isinstance(p, DeploymentPayload)
    spec = deployments.get(action.target.name)
    job_name = spec.model.from_job if spec is not None else None
    trained_in = next((j.account for j in facts.desired.jobs if j.name == job_name), None)
    wanted = f"`FineTuneJob/{job_name}` ({spec.model.checkpoint if spec else p.label})" if job_name \
        else f"`{p.label}`"
    if job_name and spec is not None and trained_in and trained_in != spec.account:
        wanted += f", trained in `{trained_in}`"
    model = wanted
    changes: list[str] = []
    current = p.current
    if current is not None:
        now = _known_model(current.model, rows, job_name)
        if p.request is None or current.model != p.request.model_name:
            model = f"{now} → {wanted}" + (" (once trained)" if p.request is None else "")
            changes.append("model")
        if current.sku != p.sku:
            changes.append(f"sku {current.sku} → {p.sku}")
        if current.capacity != p.capacity:
            changes.append(f"capacity {current.capacity} → {p.capacity}")
    sku = f"{p.sku} x{p.capacity}"
    extra = [c for c in changes if c != "model"]
    if extra:
        sku += " (" + ", ".join(extra) + ")"
    estimate = None
    if facts.prices is not None:
        base = _base_model(job_name, jobs) if job_name else None
        estimate = hosting_cost(facts.prices, base, p.sku, fine_tuned=job_name is not None)
    hosting = estimate.text() if estimate is not None else "-"
    if job_name is None:
        hosting, estimate = "none (billed per token)", None  # a base model has no hourly hosting fee
    gates = _gates(spec, rows.get(("Deployment", action.target.name)))
    return ((f"| `{_symbol(action)}` | `{action.target.name}` | {model} | {sku} | {hosting} | {gates} | "
            f"{action.reason.value} |"), estimate)


def _gates(spec: DeploymentSpec | None, row: ResourceStatus | None) -> str:
    if spec is None or (not spec.gates.metrics and spec.gates.eval_file is None):
        return "none"
    condition = row.condition("GatesPassed") if row is not None else None
    declared = [f"{g.metric} {g.op} {g.threshold:g}" for g in spec.gates.metrics]
    if spec.gates.eval_file is not None:
        declared.append(f"eval `{spec.gates.eval_file.display}`")
    if condition is None or condition.reason == "WaitingForJob":
        return "after training: " + "; ".join(_md(d) for d in declared)
    mark = {"True": "✅", "False": "❌"}.get(condition.status, "⏳")
    return f"{mark} {_md(condition.message)}"


def _deleted(action: Action) -> str:
    p = action.payload
    if isinstance(p, DeploymentRefPayload) or action.kind is ActionKind.DELETE_DEPLOYMENT:
        return f"`{action.target}`"
    if isinstance(p, JobRefPayload):
        return f"`{action.target}`: cancel the running job"
    if isinstance(p, ModelDeletePayload):
        results = f" and {len(p.result_files)} results file(s)" if p.result_files else ""
        return f"`{action.target}`: the job and its model{results}"
    return f"`{action.target}`"


def _known_model(model: str, rows: Mapping[tuple[str, str], ResourceStatus], job: str | None) -> str:
    """A served model by the FineTuneJob that made it (ids vary from run to run; names do not)."""
    for (kind, name), row in sorted(rows.items()):
        if kind == "FineTuneJob" and row.fine_tuned_model == model:
            return f"`FineTuneJob/{name}` (its current model)"
    if ".ft-" in model:
        return f"the model of `FineTuneJob/{job}` it serves now" if job else "the model it serves now"
    return f"`{model}`"


def _base_model(job: str | None, jobs: Mapping[str, FineTuneJobSpec]) -> str | None:
    seen: set[str] = set()
    while job is not None and job in jobs and job not in seen:
        seen.add(job)
        spec = jobs[job]
        if spec.base_model is not None:
            return spec.base_model
        job = spec.from_job
    return None


def _totals(training: Sequence[Estimate], hosting: Sequence[Estimate]) -> str:
    parts = []
    if training:
        parts.append("training (once) " + _sum(training))
    if hosting:
        parts.append("new hosting " + _sum(hosting) + " per hour")
    return "Estimated cost: " + "; ".join(parts) + "." if parts else ""


def _sum(estimates: Sequence[Estimate]) -> str:
    known = [e for e in estimates if e.amount is not None]
    currency = estimates[0].currency
    total = sum((e.amount for e in known if e.amount is not None), Decimal(0))
    text = money(total, currency)
    if len(known) < len(estimates):
        text += f" plus {len(estimates) - len(known)} without a price"
    return text


def _symbol(action: Action) -> str:
    if action.reason in (Reason.REQUIRES_NEW_TRAINING, Reason.REPLACE_REQUESTED) and action.kind in (
        ActionKind.CANCEL_JOB, ActionKind.DELETE_MODEL, ActionKind.CREATE_JOB
    ):
        return "-/+"
    return action.kind.symbol


def _md(text: str) -> str:
    return text.replace("|", "\\|")


__all__ = ["MARKER", "CommentFacts", "render_comment", "render_error_comment"]
