"""The reconcile core's values: what was observed, and a plan as data.

``observe`` fills an ``Observation`` per account; ``plan`` turns desired + observed into a
``Plan`` (ordered ``Action`` values plus the resources that are ``Blocked``); ``apply`` carries
the actions out. Everything here is an immutable value that serialises to JSON (``to_dict`` /
``Plan.from_dict`` for a saved plan). No I/O, no clock, no SDK types.

An action is executable on its own, as in Terraform: its ``payload`` (one of the ``*Payload``
classes below) holds everything ``apply`` needs (the remote file name and digest to upload, the
whole job request, the whole deployment body with its tags, the id to cancel or delete).
``before``/``after`` and ``reason`` are derived from the payload for people; apply never reads
them. Two values are only known while applying and are therefore named, not given: the id of a
data file uploaded by an earlier action of the same plan (the payload names the file by its
content-hashed name) and the fine-tuned model of a ``fromJob`` parent still training (the
payload names the parent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from tunekeeper.cloud.base import (
    DeploymentRequest,
    ObservedCheckpoint,
    ObservedDeployment,
    ObservedFile,
    ObservedJob,
    ObservedModel,
)
from tunekeeper.resources.specs import Hyperparameters, Method, TrainingType

PLAN_FORMAT_VERSION = "2"
SENSITIVE = "(sensitive)"


def redact_url(url: str) -> str:
    """Keep scheme, host and path; a query string (SAS token) or userinfo becomes ``(sensitive)``."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username or parts.password:
        netloc = f"{SENSITIVE}@{netloc}"
    text = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return text + ("?" + SENSITIVE if parts.query else "")


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

    DELETE_FILE = "delete_file"  # a second copy of an upload, or a file of this owner nothing uses any more
    UPLOAD_FILE = "upload_file"
    IMPORT_FILE = "import_file"
    WAIT_FILE = "wait_file"
    CANCEL_JOB = "cancel_job"
    DELETE_MODEL = "delete_model"  # delete a fine-tuning job, its fine-tuned model and its results files
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
    ActionKind.DELETE_FILE: "-",
    ActionKind.UPLOAD_FILE: "+",
    ActionKind.IMPORT_FILE: "+",
    ActionKind.WAIT_FILE: "…",
    ActionKind.DELETE_MODEL: "-",
    ActionKind.CANCEL_JOB: "-",
    ActionKind.CREATE_JOB: "+",
    ActionKind.WAIT_JOB: "…",
    ActionKind.DELETE_DEPLOYMENT: "-",
    ActionKind.EVALUATE_MODEL: "?",
    ActionKind.CREATE_DEPLOYMENT: "+",
    ActionKind.UPDATE_DEPLOYMENT: "~",
    ActionKind.WAIT_DEPLOYMENT: "…",
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
    ADOPTED = "created by tunekeeper 0.1: marked as this stack's"
    ROLLBACK = "rollback to a retained model, no new training"
    REPLACE_REQUESTED = "replacement requested (--replace)"
    BEYOND_RETENTION = "replaced, beyond the models kept for rollback"
    UNUSED = "used by nothing any more"
    # blocked: nothing will happen until the spec (or something outside tunekeeper) changes
    GATE_FAILED = "gate failed"
    JOB_FAILED = "job failed"
    FILE_FAILED = "file failed"
    DEPLOYMENT_FAILED = "deployment failed"
    CHECKPOINT_NOT_RETAINED = "checkpoint not retained"
    NOT_OWNED = "not owned by tunekeeper"


# Plan order: files first, then jobs, then deployments; inside a stage, dependencies first. Then
# the deletions that run last (prune and garbage collection): deployments, models, files.
STAGES: Mapping[str, int] = {"File": 0, "FineTuneJob": 1, "Deployment": 2}
LAST_STAGES: Mapping[str, int] = {"Deployment": 0, "Model": 1, "File": 2}
KIND_ORDER: Mapping[ActionKind, int] = {k: i for i, k in enumerate(ActionKind)}


# -- payloads: what apply needs, one class per family of action kinds -------------------------------
@dataclass(frozen=True, slots=True)
class FilePayload:
    """UPLOAD_FILE / IMPORT_FILE: put a data file into the account under its content-hashed name."""

    name: str  # tk-<sha256[:16]>-<original name>: the name it gets in the account
    digest: str  # sha256 of the bytes (of the URL for an import)
    path: str | None = None  # the local file, relative to the stack root (POSIX)
    url: str | None = None  # the URL to import; never written to a plan file (SAS tokens): re-bound on load
    display: str = ""  # as written in the manifest


@dataclass(frozen=True, slots=True)
class FileRefPayload:
    """WAIT_FILE / DELETE_FILE: one file in the account, by id."""

    file_id: str
    name: str
    status: str = ""  # as observed, for display


@dataclass(frozen=True, slots=True)
class JobPayload:
    """CREATE_JOB: the whole job request. Files are named (their ids may come from this very plan)."""

    model: str | None  # the base model, or the parent's fine-tuned model; None while the parent trains
    training_file: str  # content-hashed file name in the account
    validation_file: str | None
    method: Method
    hyperparameters: Hyperparameters
    suffix: str
    seed: int
    training_type: TrainingType | None = None
    fingerprint: str = ""  # markers.job_fingerprint of the resource (for display and saved-plan checks)
    parent: str | None = None  # FineTuneJob whose fine-tuned model to train from when ``model`` is None
    parent_job_id: str | None = None  # the parent's job, when the plan knew it


@dataclass(frozen=True, slots=True)
class JobRefPayload:
    """CANCEL_JOB / DELETE_JOB / WAIT_JOB: one job in the account, by id."""

    job_id: str
    status: str = ""  # as observed, for display
    model: str = ""  # the model it trains from, for display
    fine_tuned_model: str | None = None


@dataclass(frozen=True, slots=True)
class ModelDeletePayload:
    """DELETE_MODEL: delete a finished job (which deletes its fine-tuned model), then its results files."""

    job_id: str
    status: str = ""  # as observed, for display
    fine_tuned_model: str | None = None
    result_files: tuple[str, ...] = ()  # ids of its results files: nothing else would ever name them


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment as observed, kept in a payload for display (``capacity 10 -> 20``)."""

    model: str
    version: str | None
    sku: str
    capacity: int | None
    provisioning_state: str

    @classmethod
    def of(cls, d: ObservedDeployment | None) -> DeploymentView | None:
        if d is None:
            return None
        return cls(d.model_name, d.model_version, d.sku, d.capacity, d.provisioning_state)


@dataclass(frozen=True, slots=True)
class DeploymentPayload:
    """CREATE_DEPLOYMENT / UPDATE_DEPLOYMENT: the whole ARM body, tags included.

    ``request`` is None while the model is not known (the job trains): the action then only
    shows what will come, and apply defers it; the next plan carries the body.
    """

    name: str
    request: DeploymentRequest | None
    label: str  # which model: "final", "best (step 30)", a base model, "FineTuneJob/x (final)"
    sku: str  # as ARM spells it (also in ``request``; here for the display of a deferred one)
    capacity: int
    current: DeploymentView | None = None  # what the account holds now (display)
    eval_key: str | None = None  # the eval gate (gates.eval_key) must have passed first, in this pass


@dataclass(frozen=True, slots=True)
class DeploymentRefPayload:
    """DELETE_DEPLOYMENT / WAIT_DEPLOYMENT: one deployment, by name."""

    name: str
    current: DeploymentView | None = None


@dataclass(frozen=True, slots=True)
class EvalPayload:
    """EVALUATE_MODEL: deploy ``candidate`` (the model to judge), ask it the eval set, delete it."""

    deployment: str  # the Deployment the verdict is for
    candidate: DeploymentRequest  # the temporary deployment, tagged as ours
    eval_path: str  # the eval file, relative to the stack root
    eval_display: str
    eval_key: str  # gates.eval_key: the verdict is recorded under it


Payload = (FilePayload | FileRefPayload | JobPayload | JobRefPayload | ModelDeletePayload | DeploymentPayload
           | DeploymentRefPayload | EvalPayload)
_PAYLOAD_TYPES: Mapping[str, type[Any]] = {
    "file": FilePayload, "file_ref": FileRefPayload, "job": JobPayload, "job_ref": JobRefPayload,
    "model_delete": ModelDeletePayload,
    "deployment": DeploymentPayload, "deployment_ref": DeploymentRefPayload, "evaluate": EvalPayload,
}
_PAYLOAD_TAGS: Mapping[type[Any], str] = {v: k for k, v in _PAYLOAD_TYPES.items()}


def payload_to_dict(payload: Payload) -> dict[str, object]:
    data = msgspec.to_builtins(payload)
    assert isinstance(data, dict)
    if isinstance(payload, FilePayload) and payload.url is not None:
        data["url"] = None  # a SAS token must never reach a file; apply re-binds the URL from the manifests
        data["display"] = redact_url(payload.url)
    return {"type": _PAYLOAD_TAGS[type(payload)], **data}


def payload_from_dict(data: Mapping[str, object]) -> Payload:
    body = {k: v for k, v in data.items() if k != "type"}
    result: Payload = msgspec.convert(body, _PAYLOAD_TYPES[str(data["type"])])
    return result


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan: what to do (``kind``, ``payload``) and, for people, why (``reason``)."""

    kind: ActionKind
    target: ResourceKey  # the resource the step is about
    reason: Reason  # why; for people and tests, never read by apply
    payload: Payload  # everything apply needs; nothing else is read when executing
    account: str = "embedded"  # which account (Cloud) it runs against
    depth: int = 0  # dependency depth (a fromJob child is deeper than its parent); part of the order
    # PruneLast: a deletion of prune or garbage collection. It runs after every other change of the
    # pass succeeded (so a renamed deployment is created before the old one goes), in the order
    # deployments, models, files; apply defers it otherwise.
    last: bool = False

    def sort_key(self) -> tuple[int, int, int, int, str, str, str]:
        stage = LAST_STAGES.get(self.target.kind, 9) if self.last else STAGES.get(self.target.kind, 9)
        return (int(self.last), stage, self.depth, KIND_ORDER[self.kind], self.target.name, self.account,
                _identity(self.payload))

    @property
    def before(self) -> Mapping[str, object] | None:
        """The observed values the action changes (display only); None for a create."""
        return _before(self.payload)

    @property
    def after(self) -> Mapping[str, object] | None:
        """The values the action sets (display only); None for a delete or a wait."""
        return _after(self.kind, self.payload)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value, "target": str(self.target), "reason": self.reason.name,
            "account": self.account, "depth": self.depth, "last": self.last,
            "payload": payload_to_dict(self.payload),
            "before": _plain(self.before), "after": _plain(self.after),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Action:
        payload = data.get("payload")
        assert isinstance(payload, Mapping), "an action has a payload"
        return cls(
            kind=ActionKind(str(data["kind"])), target=ResourceKey.parse(str(data["target"])),
            reason=Reason[str(data["reason"])], payload=payload_from_dict(payload),
            account=str(data.get("account", "embedded")), depth=int(str(data.get("depth", 0))),
            last=bool(data.get("last", False)),
        )


def _identity(payload: Payload) -> str:
    """What tells two actions on one target apart (two twins cancelled): the object's id."""
    if isinstance(payload, (JobRefPayload, ModelDeletePayload)):
        return payload.job_id
    if isinstance(payload, FileRefPayload):
        return payload.file_id
    return ""


def _view(view: DeploymentView | None) -> dict[str, object] | None:
    if view is None:
        return None
    return {"model": view.model, "version": view.version, "sku": view.sku, "capacity": view.capacity,
            "provisioning_state": view.provisioning_state}


def _before(p: Payload) -> Mapping[str, object] | None:
    if isinstance(p, FileRefPayload):
        return {"file_id": p.file_id, "status": p.status}
    if isinstance(p, JobRefPayload):
        return {"job_id": p.job_id, "status": p.status, "model": p.model}
    if isinstance(p, ModelDeletePayload):
        return {"job_id": p.job_id, "status": p.status, "model": p.fine_tuned_model,
                "result_files": list(p.result_files)}
    if isinstance(p, (DeploymentPayload, DeploymentRefPayload)):
        return _view(p.current)
    return None


def _after(kind: ActionKind, p: Payload) -> Mapping[str, object] | None:
    if isinstance(p, FilePayload):
        return {"source": redact_url(p.url) if p.url else (p.display or p.path or ""), "sha256": p.digest}
    if isinstance(p, JobPayload):
        after: dict[str, object] = {
            "model": p.model or f"FineTuneJob/{p.parent} (when it succeeds)", "method": p.method.value,
            "training_file": p.training_file, "seed": p.seed, "suffix": p.suffix,
        }
        if p.validation_file is not None:
            after["validation_file"] = p.validation_file
        hp = {k: v for k, v in msgspec.to_builtins(p.hyperparameters).items() if v is not None}
        if hp:
            after["hyperparameters"] = hp
        if p.training_type is not None:
            after["training_type"] = p.training_type.value
        return after
    if isinstance(p, DeploymentPayload):
        if p.request is None:
            return {"model": p.label, "sku": p.sku, "capacity": p.capacity}
        r = p.request
        return {"model": r.model_name, "version": r.model_version, "sku": r.sku.value, "capacity": r.capacity,
                "checkpoint": p.label, "tags": dict(sorted(r.tags.items()))}
    if isinstance(p, EvalPayload):
        return {"model": p.candidate.model_name, "eval_file": p.eval_display, "candidate": p.candidate.name}
    return None


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
    touched: Mapping[str, str] = field(
        default_factory=dict
    )  # "account:Kind/name" -> hash of its observed state
    warnings: tuple[str, ...] = ()  # sentences: quota walls ahead, objects left alone that look like ours
    notes: tuple[str, ...] = ()  # sentences: what is worth knowing but changes nothing (a re-adopted model)
    owner: str = ""  # the owner id the plan acts for (markers.py)
    owner_label: str = ""

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
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "owner": {"id": self.owner, "label": self.owner_label},
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
        owner = data.get("owner") or {}
        warnings = data.get("warnings") or []
        notes = data.get("notes") or []
        assert isinstance(actions, list) and isinstance(blocked, list) and isinstance(touched, Mapping)
        assert isinstance(owner, Mapping) and isinstance(warnings, list) and isinstance(notes, list)
        return cls(
            format_version=version, observed_fingerprint=str(data["observed_fingerprint"]),
            actions=tuple(Action.from_dict(a) for a in actions),
            blocked=tuple(Blocked(ResourceKey.parse(str(b["target"])), Reason[str(b["reason"])],
                                  str(b["message"]), str(b.get("account", "embedded"))) for b in blocked),
            matched=int(str(data.get("matched", 0))),
            touched={str(k): str(v) for k, v in touched.items()},
            warnings=tuple(str(w) for w in warnings), notes=tuple(str(n) for n in notes),
            owner=str(owner.get("id", "")), owner_label=str(owner.get("label", "")),
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
        return cls(
            final={str(k): float(str(v)) for k, v in final.items()},
            steps=int(str(data.get("steps", 0))),
            last_step=None if last is None else int(str(last)),
        )


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
