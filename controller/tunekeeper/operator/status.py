"""A custom resource's ``status``, from the reconcile core's ``ResourceStatus`` and what is left to do.

Called by ``stack.py`` after each run. Pure: values in, a JSON-able dict out. The core decides the
conditions it knows (Ready, Succeeded, DataValidated, GatesPassed, with their lastTransitionTime);
this module adds the two that describe the run rather than the resource (Progressing: something
is still to be done for it; Degraded: it failed or is blocked and waits on a person), stamps
every condition with the generation it was computed for, and spells fields as Kubernetes does
(camelCase). Must not: decide anything about what to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tunekeeper.reconcile import Blocked, Condition, Plan, ResourceStatus, set_condition

# Conditions every resource of a kind carries from its first visit on.
CONDITION_TYPES: Mapping[str, tuple[str, ...]] = {
    "Account": ("Ready",),
    "FineTuneJob": ("DataValidated", "Succeeded", "Progressing", "Degraded", "Ready"),
    "Deployment": ("GatesPassed", "Progressing", "Degraded", "Ready"),
}


def camel(text: str) -> str:
    """``wait_job`` / ``job failed`` / ``JOB_FAILED`` -> ``WaitJob`` / ``JobFailed``: a condition reason."""
    return "".join(part.capitalize() for part in re.split(r"[\s_\-]+", text) if part)


def previous_conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    found = status.get("conditions") or []
    return tuple(Condition.from_dict(c) for c in found if isinstance(c, Mapping) and c.get("type"))


def settle_conditions(
    kind: str,
    previous: Sequence[Condition],
    new: Sequence[Condition],
    generation: int | None,
    now: datetime,
) -> list[dict[str, object]]:
    """``new`` set over ``previous`` (transition times move only when status flips), every type of
    the kind present (Unknown when nothing is known yet), each stamped with ``generation``."""
    conditions = tuple(previous)
    for condition in new:
        conditions = set_condition(conditions, condition, now)
    for type_ in CONDITION_TYPES[kind]:
        if not any(c.type == type_ for c in conditions):
            conditions = set_condition(
                conditions,
                Condition(type_, "Unknown", "NotObserved", "The operator has not observed this yet."),
                now,
            )
    order = {t: i for i, t in enumerate(CONDITION_TYPES[kind])}
    ordered = sorted(conditions, key=lambda c: order.get(c.type, len(order)))
    out: list[dict[str, object]] = []
    for condition in ordered:
        entry = condition.to_dict()
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    return out


def run_conditions(
    kind: str, name: str, row: ResourceStatus, remaining: Plan, errors: Mapping[str, str]
) -> list[Condition]:
    """Progressing and Degraded for one resource, from the last plan and the run's errors."""
    key = f"{kind}/{name}"
    ready = row.condition("Ready")
    blocked: Blocked | None = next((b for b in remaining.blocked if str(b.target) == key), None)
    pending = [a for a in remaining.actions if str(a.target) == key]
    out: list[Condition] = []
    if key in errors:
        out.append(Condition("Degraded", "True", "CloudError", errors[key].rstrip(".") + "."))
    elif blocked is not None:
        out.append(Condition("Degraded", "True", camel(blocked.reason.name), blocked.message))
    else:
        out.append(Condition("Degraded", "False", "AsExpected", "Nothing failed."))
    if pending and key not in errors and blocked is None:
        reason = (
            ready.reason if ready is not None and ready.status != "True" else camel(pending[0].kind.value)
        )
        message = (
            ready.message if ready is not None and ready.message else f"{pending[0].kind.value} is next."
        )
        out.append(Condition("Progressing", "True", reason, message))
    else:
        reason = "Settled" if blocked is None and key not in errors else "Stopped"
        out.append(Condition("Progressing", "False", reason, "Nothing is in progress."))
    return out


def resource_status(kind: str, row: ResourceStatus) -> dict[str, Any]:
    """The kind's own status fields (conditions apart), in Kubernetes spelling; None clears a field."""
    out: dict[str, Any] = {"account": row.account, "error": row.error}
    if kind == "FineTuneJob":
        out.update(
            {
                "jobId": row.job_id,
                "jobStatus": row.job_status,
                "fineTunedModel": row.fine_tuned_model,
                "baseModel": row.base_model,
                "checkpoints": [
                    {
                        "id": c.id,
                        "step": c.step,
                        "epoch": c.epoch,
                        "model": c.model,
                        "metrics": dict(sorted(c.metrics.items())),
                    }
                    for c in row.checkpoints
                ],
                "metrics": (
                    {
                        "final": dict(sorted(row.metrics.final.items())),
                        "steps": row.metrics.steps,
                        "lastStep": row.metrics.last_step,
                    }
                    if row.metrics
                    else None
                ),
            }
        )
    elif kind == "Deployment":
        dep = row.deployment
        out.update(
            {
                "serving": row.serving,
                "jobId": row.job_id,
                "fineTunedModel": row.fine_tuned_model,
                "deployment": (
                    {
                        "provisioningState": dep.provisioning_state,
                        "model": dep.model,
                        "version": dep.version,
                        "sku": dep.sku,
                        "capacity": dep.capacity,
                        "deploymentState": dep.deployment_state,
                    }
                    if dep
                    else None
                ),
            }
        )
    return out


def failure_conditions(kind: str, reason: str, message: str, *, data: bool = False) -> list[Condition]:
    """A resource the run could not take on (invalid spec or data, missing credentials)."""
    out = [Condition("Ready", "False", reason, message)]
    if kind != "Account":
        out += [
            Condition("Degraded", "True", reason, message),
            Condition("Progressing", "False", "Stopped", "Fix the resource; nothing is done until then."),
        ]
    if kind == "FineTuneJob" and data:
        out.append(Condition("DataValidated", "False", reason, message))
    return out
