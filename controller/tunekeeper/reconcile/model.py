"""The reconcile core's values: what was observed, and a plan as data.

``observe`` fills an ``Observation`` per account; ``plan`` turns desired + observed into a
``Plan`` (ordered ``Action`` values plus the resources that are ``Blocked``); ``apply`` carries
the actions out. Everything here is an immutable value that serialises to JSON (``to_dict`` /
``Plan.from_dict`` for a saved plan). No I/O, no clock, no SDK types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from tunekeeper.cloud.base import (
    ObservedCheckpoint,
    ObservedDeployment,
    ObservedFile,
    ObservedJob,
    ObservedModel,
)

PLAN_FORMAT_VERSION = "1"


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """What an action is about: ``("Deployment", "support-bot")``, ``("File", "tk-3f2a…-train.jsonl")``."""

    kind: str  # FineTuneJob | Deployment | File
    name: str  # the manifest name; for a File, its name in the account

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ResourceKey:
        kind, _, name = text.partition("/")
        return cls(kind, name)


class ActionKind(str, Enum):
    """What ``apply`` does. Values are the names shown in plans (snake case)."""

    DELETE_FILE = "delete_file"  # a redundant copy of a data file (an upload the service ran twice)
    UPLOAD_FILE = "upload_file"
    IMPORT_FILE = "import_file"
    WAIT_FILE = "wait_file"
    CANCEL_JOB = "cancel_job"
    DELETE_JOB = "delete_job"
    CREATE_JOB = "create_job"
    WAIT_JOB = "wait_job"
    DELETE_DEPLOYMENT = "delete_deployment"
    EVALUATE_MODEL = "evaluate_model"  # run the eval gate against a temporary candidate deployment
    CREATE_DEPLOYMENT = "create_deployment"
    UPDATE_DEPLOYMENT = "update_deployment"
    WAIT_DEPLOYMENT = "wait_deployment"

    @property
    def symbol(self) -> str:
        """``+`` create, ``~`` change, ``-`` delete, ``…`` wait (no change)."""
        return _SYMBOLS[self]

    @property
    def changes(self) -> bool:
        """False for the waits: they follow progress and change nothing."""
        return self not in (ActionKind.WAIT_FILE, ActionKind.WAIT_JOB, ActionKind.WAIT_DEPLOYMENT)


_SYMBOLS = {
    ActionKind.DELETE_FILE: "-", ActionKind.UPLOAD_FILE: "+", ActionKind.IMPORT_FILE: "+", ActionKind.WAIT_FILE: "…",
    ActionKind.DELETE_JOB: "-", ActionKind.CANCEL_JOB: "-", ActionKind.CREATE_JOB: "+",
    ActionKind.WAIT_JOB: "…", ActionKind.DELETE_DEPLOYMENT: "-", ActionKind.EVALUATE_MODEL: "?",
    ActionKind.CREATE_DEPLOYMENT: "+",
    ActionKind.UPDATE_DEPLOYMENT: "~", ActionKind.WAIT_DEPLOYMENT: "…",
}


class Reason(str, Enum):
    """Why an action is planned, or why a resource is blocked. For people and tests; apply never reads it."""

    NOT_IN_ACCOUNT = "not in account"
    SPEC_CHANGED = "spec changed"
    REQUIRES_NEW_TRAINING = "requires new training"
    DRIFT = "changed outside tunekeeper"
    WAITING_FOR_FILES = "waiting for files"
    WAITING_FOR_PARENT = "waiting for parent"
    EVAL_PENDING = "eval gate pending"
    FILE_PROCESSING = "file processing"
    JOB_RUNNING = "job running"
    PROVISIONING = "provisioning"
    NO_LONGER_DECLARED = "no longer declared"
    DUPLICATE = "duplicate of the adopted job"
    # blocked: nothing will happen until the spec (or something outside tunekeeper) changes
    GATE_FAILED = "gate failed"
    JOB_FAILED = "job failed"
    FILE_FAILED = "file failed"
    DEPLOYMENT_FAILED = "deployment failed"
    CHECKPOINT_NOT_RETAINED = "checkpoint not retained"
    NOT_OWNED = "not owned by tunekeeper"


# Plan order: files first, then jobs, then deployments; inside a stage, dependencies first.
STAGES: Mapping[str, int] = {"File": 0, "FineTuneJob": 1, "Deployment": 2}
KIND_ORDER: Mapping[ActionKind, int] = {k: i for i, k in enumerate(ActionKind)}


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan."""

    kind: ActionKind
    target: ResourceKey  # the resource the step is about
    reason: Reason  # why; for people and tests, never read by apply
    before: Mapping[str, object] | None  # the observed values it changes; None for a create
    after: Mapping[str, object] | None  # the values it sets; None for a delete
    account: str = "embedded"  # which account (Cloud) it runs against
    depth: int = 0  # dependency depth (a fromJob child is deeper than its parent); part of the order

    def sort_key(self) -> tuple[int, int, int, str, str]:
        return (STAGES.get(self.target.kind, 9), self.depth, KIND_ORDER[self.kind], self.target.name, self.account)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value, "target": str(self.target), "reason": self.reason.name,
            "account": self.account, "depth": self.depth,
            "before": _plain(self.before), "after": _plain(self.after),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Action:
        before, after = data.get("before"), data.get("after")
        return cls(
            kind=ActionKind(str(data["kind"])), target=ResourceKey.parse(str(data["target"])),
            reason=Reason[str(data["reason"])],
            before=dict(before) if isinstance(before, Mapping) else None,
            after=dict(after) if isinstance(after, Mapping) else None,
            account=str(data.get("account", "embedded")), depth=int(str(data.get("depth", 0))),
        )


@dataclass(frozen=True, slots=True)
class Blocked:
    """A resource the plan cannot move forward (failed job, failed gate, ...) and why."""

    target: ResourceKey
    reason: Reason
    message: str  # a sentence saying what is wrong and what to do
    account: str = "embedded"

    def to_dict(self) -> dict[str, object]:
        return {"target": str(self.target), "reason": self.reason.name, "message": self.message,
                "account": self.account}


@dataclass(frozen=True, slots=True)
class Plan:
    """An ordered list of actions: the whole answer of ``plan``."""

    format_version: str  # bump when a field changes meaning
    observed_fingerprint: str  # hash of the observed objects the actions touch (stale-plan check)
    actions: tuple[Action, ...]
    blocked: tuple[Blocked, ...] = ()  # resources that wait on a change by a person, with why
    matched: int = 0  # resources already as declared (for "No changes. N resources match.")
    touched: Mapping[str, str] = field(default_factory=dict)  # target -> hash of its observed state

    @property
    def has_changes(self) -> bool:
        return any(a.kind.changes for a in self.actions)

    def counts(self) -> tuple[int, int, int]:
        """(to create, to change, to delete), counting changes only."""
        add = sum(1 for a in self.actions if a.kind.symbol == "+")
        change = sum(1 for a in self.actions if a.kind.symbol == "~")
        delete = sum(1 for a in self.actions if a.kind.symbol == "-")
        return add, change, delete

    def to_dict(self) -> dict[str, object]:
        return {
            "format_version": self.format_version,
            "observed_fingerprint": self.observed_fingerprint,
            "actions": [a.to_dict() for a in self.actions],
            "blocked": [b.to_dict() for b in self.blocked],
            "matched": self.matched,
            "touched": dict(sorted(self.touched.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Plan:
        from tunekeeper.errors import PlanError

        version = str(data.get("format_version"))
        if version != PLAN_FORMAT_VERSION:
            raise PlanError(f"Saved plan has format {version}, this tunekeeper writes {PLAN_FORMAT_VERSION}",
                            hint='run "tunekeeper plan" again')
        actions = data.get("actions") or []
        blocked = data.get("blocked") or []
        touched = data.get("touched") or {}
        assert isinstance(actions, list) and isinstance(blocked, list) and isinstance(touched, Mapping)
        return cls(
            format_version=version, observed_fingerprint=str(data["observed_fingerprint"]),
            actions=tuple(Action.from_dict(a) for a in actions),
            blocked=tuple(Blocked(ResourceKey.parse(str(b["target"])), Reason[str(b["reason"])],
                                  str(b["message"]), str(b.get("account", "embedded"))) for b in blocked),
            matched=int(str(data.get("matched", 0))),
            touched={str(k): str(v) for k, v in touched.items()},
        )


def _plain(value: Mapping[str, object] | None) -> dict[str, object] | None:
    return None if value is None else {k: value[k] for k in sorted(value)}


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    """What results.csv said, kept small: final value of each metric and its last step."""

    final: Mapping[str, float]  # metric -> value in the last row that has it
    steps: int = 0  # rows in results.csv
    last_step: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {"final": dict(sorted(self.final.items())), "steps": self.steps, "last_step": self.last_step}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MetricsSummary:
        final = data.get("final") or {}
        assert isinstance(final, Mapping)
        last = data.get("last_step")
        return cls(final={str(k): float(str(v)) for k, v in final.items()}, steps=int(str(data.get("steps", 0))),
                   last_step=None if last is None else int(str(last)))


@dataclass(frozen=True, slots=True)
class Observation:
    """One account as seen by ``observe``: list results plus details of the jobs tunekeeper owns."""

    account: str
    files: tuple[ObservedFile, ...] = ()
    jobs: tuple[ObservedJob, ...] = ()
    deployments: tuple[ObservedDeployment, ...] = ()
    models: tuple[ObservedModel, ...] = ()
    # job id -> its checkpoints (oldest step first); only for owned jobs, running or succeeded
    checkpoints: Mapping[str, tuple[ObservedCheckpoint, ...]] = field(default_factory=dict)
    # job id -> the summary of its results.csv; only for owned, succeeded jobs
    results: Mapping[str, MetricsSummary] = field(default_factory=dict)
    requests: int = 0  # HTTP requests this observation cost (pagination and retries included)


@dataclass(frozen=True, slots=True)
class Known:
    """What earlier runs learned (from the state file), as plan input: a cache, never the truth.

    ``jobs`` lets plan recognise the previous job of a FineTuneJob whose spec changed (so the
    change is shown as a replacement); ``deployments`` lets it tell a deployment that vanished
    (drift) from one never created.
    """

    jobs: Mapping[str, str] = field(default_factory=dict)  # FineTuneJob name -> job id last used
    deployments: frozenset[str] = frozenset()  # Deployment names that once provisioned
    evals: Mapping[str, bool] = field(default_factory=dict)  # eval gate outcomes by gates.eval_key
