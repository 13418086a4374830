"""Status on two axes, as Argo CD shows an application: **sync** and **health**.

- **Sync** says whether the accounts match the manifests: ``Synced`` (nothing to change),
  ``OutOfSync`` (the manifests ask for something not done yet: a new resource, a spec change, a
  new training run, or a change that is blocked, e.g. by a failed gate) or ``Drifted`` (someone
  changed the account outside tunekeeper, e.g. a capacity set in the portal, or a deployment
  deleted there). It is read from the plan made from the same observation, so ``status`` and
  ``plan`` can never disagree.
- **Health** says whether the resource works: ``Healthy`` (trained; serving), ``Progressing``
  (uploading, training, provisioning, waiting for a parent job), ``Degraded`` (failed job or
  file, failed provisioning, a resource tunekeeper does not own, an Azure error, a failed gate
  with nothing serving), ``Suspended`` (a paused deployment), ``Missing`` (not created yet).
  A deployment whose new model failed its gate but which still serves the previous model is
  ``Healthy`` and ``OutOfSync``: production keeps working, the manifests are not met, and the
  message says why.

The ``Ready`` condition stays as it is (Kubernetes' shape, for the operator and scripts); these
two axes are derived from it, the deployment state and the plan. Pure; called by status.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tunekeeper.reconcile.model import Action, Blocked, Plan, Reason, ResourceKey

SyncStatus = Literal["Synced", "OutOfSync", "Drifted", "Unknown"]
HealthStatus = Literal["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"]

# Ready reasons (status.py) -> health. A reason not listed is Unknown.
_HEALTH: dict[str, HealthStatus] = {
    "TrainingSucceeded": "Healthy", "Serving": "Healthy",
    "TrainingRunning": "Progressing", "WaitingForParent": "Progressing", "WaitingForJob": "Progressing",
    "Provisioning": "Progressing", "Updating": "Progressing", "SpecChanged": "Progressing",
    "NotCreated": "Missing", "NotDeployed": "Missing",
    "TrainingFailed": "Degraded", "TrainingCancelled": "Degraded", "JobFailed": "Degraded",
    "ProvisioningFailed": "Degraded", "NotOwned": "Degraded", "CloudError": "Degraded",
    "CheckpointNotRetained": "Degraded", "GateFailed": "Degraded", "Blocked": "Degraded",
}


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of a resource's status: a word and a sentence saying why."""

    status: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "message": self.message}


UNKNOWN = Axis("Unknown", "")


def sync_of(key: ResourceKey, account: str, plan: Plan | None) -> Axis:
    """Synced / OutOfSync / Drifted for one resource, from the plan's actions and blocked entries."""
    if plan is None:
        return Axis("Unknown", "No plan could be made; see the error.")
    changes = [a for a in plan.actions if a.target == key and a.account == account and a.kind.changes]
    drift = [a for a in changes if a.reason is Reason.DRIFT]
    if drift:
        return Axis("Drifted", "Changed outside tunekeeper: " + "; ".join(_describe(a) for a in drift) + ".")
    blocked = [b for b in plan.blocked if b.target == key and b.account == account]
    if changes:
        return Axis("OutOfSync", "; ".join(_describe(a) for a in changes) + ".")
    if blocked:
        return Axis("OutOfSync", " ".join(_blocked(b) for b in blocked))
    return Axis("Synced", "The account matches the manifest.")


def health_of(ready_reason: str, ready_message: str, *, serving: bool = False, paused: bool = False) -> Axis:
    """Health from the Ready condition's reason (and, for deployments, whether one serves)."""
    if paused:
        return Axis("Suspended", "The deployment is paused; resume it to serve requests.")
    health = _HEALTH.get(ready_reason, "Unknown")
    if health == "Degraded" and ready_reason == "GateFailed" and serving:
        return Axis("Healthy", f"Still serving the previous model. {ready_message}")
    return Axis(health, ready_message)


def _describe(action: Action) -> str:
    """``update_deployment (capacity 1 -> 2, spec changed)``; for drift ``update_deployment (capacity
    is 3 in the account, 1 in the manifest)``."""
    before, after = action.before or {}, action.after or {}
    keys = [k for k in ("model", "sku", "capacity")
            if k in after and k in before and before.get(k) != after.get(k)]
    if action.reason is Reason.DRIFT:
        changed = [f"{k} is {before.get(k)} in the account, {after.get(k)} in the manifest" for k in keys]
        if action.before is None:
            changed = ["deleted from the account"]
        return f"{action.kind.value}" + (f" ({', '.join(changed)})" if changed else "")
    changed = [f"{k} {before.get(k)} -> {after.get(k)}" for k in keys]
    return f"{action.kind.value} ({', '.join([*changed, action.reason.value])})"


def _blocked(blocked: Blocked) -> str:
    message = blocked.message.rstrip(".")
    return f"Blocked ({blocked.reason.value}): {message}."
