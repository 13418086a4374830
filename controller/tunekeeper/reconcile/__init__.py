"""The reconcile core: observe -> plan (pure, actions as data) -> apply, and converge over them.

Who calls it: the CLI (``plan``, ``apply``, ``status``) and, later, the operator. It talks to
Azure only through the ``Cloud`` protocol and knows nothing of click, kopf or the SDKs.
Public names are the ones re-exported here; ownership markers and the adoption rule are
documented in ``markers.py``, replacement detection in ``planning.py``, checkpoint choice and
gates in ``gates.py``.
"""

from tunekeeper.reconcile.apply import ApplyResult, apply
from tunekeeper.reconcile.conditions import Condition, set_condition
from tunekeeper.reconcile.converge import ConvergeResult, converge
from tunekeeper.reconcile.datacheck import EvalCheck, check_datasets, check_evals
from tunekeeper.reconcile.events import ActionOutcome, EventSink, LogSink, NullSink, Outcome
from tunekeeper.reconcile.model import (
    Action,
    ActionKind,
    Blocked,
    Known,
    MetricsSummary,
    Observation,
    Plan,
    Reason,
    ResourceKey,
)
from tunekeeper.reconcile.observe import compute_digests, observe, observe_accounts
from tunekeeper.reconcile.planning import plan
from tunekeeper.reconcile.render import render_plan
from tunekeeper.reconcile.resolution import Resolution, resolve
from tunekeeper.reconcile.state import StateEntry, StateFile
from tunekeeper.reconcile.status import (
    CheckpointStatus,
    DeploymentState,
    ResourceStatus,
    record_status,
    status,
)

__all__ = [
    "Action",
    "ActionKind",
    "ActionOutcome",
    "ApplyResult",
    "Blocked",
    "CheckpointStatus",
    "Condition",
    "ConvergeResult",
    "DeploymentState",
    "EvalCheck",
    "EventSink",
    "Known",
    "LogSink",
    "MetricsSummary",
    "NullSink",
    "Observation",
    "Outcome",
    "Plan",
    "Reason",
    "Resolution",
    "ResourceKey",
    "ResourceStatus",
    "StateEntry",
    "StateFile",
    "apply",
    "check_datasets",
    "check_evals",
    "compute_digests",
    "converge",
    "observe",
    "observe_accounts",
    "plan",
    "record_status",
    "render_plan",
    "resolve",
    "set_condition",
    "status",
]
