"""The CLI's local state file: ``<root>/.tunekeeper/state.json``, a cache of what was learned.

Written by ``converge`` after every loop (atomically: a temporary file renamed over the old
one) as typed ``StateEntry`` values (never the status display), read by ``observe`` (checkpoints and results
of finished jobs never change, so they are fetched once), ``plan`` (``Known``: the previous job of a resource,
deployments that once existed) and ``status`` (conditions keep their lastTransitionTime). The cloud plus the
ownership markers stay the truth: deleting this file loses nothing but history.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from tunekeeper.cloud.base import ObservedCheckpoint
from tunekeeper.localfiles import own_folder, read_own_file
from tunekeeper.reconcile.conditions import Condition
from tunekeeper.reconcile.model import Known, MetricsSummary

STATE_FORMAT = 2
# format 1 stored the status display; its job_id, provisioned and conditions are read
READABLE_FORMATS = (1, 2)
STATE_DIR = ".tunekeeper"
STATE_NAME = "state.json"
MAX_STATE_BYTES = 64 << 20  # a cache of some kilobytes per resource; larger is not ours, and reads as absent


def state_dir(root: Path) -> Path:
    """The folder a repository's state, locks and upload records live in (refused if a link leads out)."""
    return own_folder(root, STATE_DIR)


@dataclass(frozen=True, slots=True)
class StateEntry:
    """What the state file keeps about one resource: only what later runs read.

    Not the status display: status is derived from the cloud on every run.
    """

    # FineTuneJob: the job it last used (finds the previous job after a spec change)
    job_id: str | None = None
    provisioned: bool = False  # Deployment: it once provisioned (a vanished one is drift, not new)
    conditions: tuple[Condition, ...] = ()  # kept so lastTransitionTime moves only when a status flips

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"conditions": [c.to_dict() for c in self.conditions]}
        if self.job_id:
            out["job_id"] = self.job_id
        if self.provisioned:
            out["provisioned"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateEntry:
        conditions = tuple(
            Condition.from_dict(c) for c in data.get("conditions") or () if isinstance(c, dict)
        )
        job_id = data.get("job_id")
        return cls(job_id=str(job_id) if job_id else None, provisioned=bool(data.get("provisioned")),
                   conditions=conditions)


class StateFile:
    """One state file, loaded on construction (missing or unreadable = empty)."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps the state in memory only (``save`` does nothing)."""
        self.path = path
        self._data: dict[str, Any] = {"format": STATE_FORMAT, "resources": {}, "jobs": {}, "evals": {}}
        if path is None:
            return
        data = read_own_file(path, MAX_STATE_BYTES)  # a link, a FIFO or a huge file reads as absent
        try:
            loaded = orjson.loads(data) if data is not None else None
        except orjson.JSONDecodeError:
            return
        if isinstance(loaded, dict) and loaded.get("format") in READABLE_FORMATS:
            resources = loaded.get("resources") or {}
            self._data["resources"] = {str(k): StateEntry.from_dict(v) for k, v in dict(resources).items()
                                       if isinstance(v, dict)}
            self._data["jobs"] = dict(loaded.get("jobs") or {})
            self._data["evals"] = dict(loaded.get("evals") or {})

    @classmethod
    def for_root(cls, root: Path) -> StateFile:
        return cls(state_dir(root) / STATE_NAME)

    # -- what plan and status read ------------------------------------------------------------
    def known(self) -> Known:
        jobs: dict[str, str] = {}
        deployments: set[str] = set()
        for key, entry in self._resources.items():
            kind, _, name = key.partition("/")
            if kind == "FineTuneJob" and entry.job_id:
                jobs[name] = entry.job_id
            elif kind == "Deployment" and entry.provisioned:
                deployments.add(name)
        evals = {str(k): bool(v) for k, v in (self._data.get("evals") or {}).items()}
        return Known(jobs=jobs, deployments=frozenset(deployments), evals=evals)

    @property
    def _resources(self) -> dict[str, StateEntry]:
        resources: dict[str, StateEntry] = self._data["resources"]
        return resources

    def resource(self, key: str) -> StateEntry:
        """The recorded entry of ``Kind/name`` (empty when never seen)."""
        return self._resources.get(key) or StateEntry()

    def resources(self) -> Mapping[str, StateEntry]:
        return dict(self._resources)

    def conditions(self, key: str) -> tuple[Condition, ...]:
        return self.resource(key).conditions

    # -- job details cache (finished jobs only) -----------------------------------------------
    def job_details(self, job_id: str) -> tuple[tuple[ObservedCheckpoint, ...], MetricsSummary | None] | None:
        entry = self._data["jobs"].get(job_id)
        if not isinstance(entry, dict):
            return None
        checkpoints = tuple(
            ObservedCheckpoint(
                id=c["id"],
                job_id=job_id,
                fine_tuned_model_checkpoint=c["model"],
                step_number=int(c["step"]),
                metrics={k: float(v) for k, v in c["metrics"].items()},
                created_at=int(c.get("created_at", 0)),
            )
            for c in entry.get("checkpoints", ())
        )
        results = entry.get("results")
        return checkpoints, MetricsSummary.from_dict(results) if isinstance(results, dict) else None

    def record_job_details(
        self, job_id: str, checkpoints: Sequence[ObservedCheckpoint], results: MetricsSummary | None
    ) -> None:
        self._data["jobs"][job_id] = {
            "checkpoints": [
                {"id": c.id, "model": c.fine_tuned_model_checkpoint, "step": c.step_number,
                 "metrics": dict(c.metrics), "created_at": c.created_at}
                for c in sorted(checkpoints, key=lambda c: c.step_number)
            ],
            "results": results.to_dict() if results is not None else None,
        }

    # -- resources ------------------------------------------------------------------------------
    def record(self, key: str, entry: StateEntry) -> None:
        """Replace the entry of ``Kind/name``; keeps ``provisioned`` once set (drift detection) and the
        last job id when the new entry has none (the previous job of a changed spec stays known)."""
        old = self.resource(key)
        self._resources[key] = replace(entry, provisioned=entry.provisioned or old.provisioned,
                                       job_id=entry.job_id or old.job_id)

    def remember_job(self, name: str, job_id: str) -> None:
        """A job just created for FineTuneJob ``name``: known before the next observe adopts it."""
        key = f"FineTuneJob/{name}"
        self._resources[key] = replace(self.resource(key), job_id=job_id)

    def record_eval(self, key: str, passed: bool) -> None:
        """The eval gate's verdict on one model (see ``gates.eval_key``): judged once, remembered."""
        self._data.setdefault("evals", {})[key] = passed

    def save(self) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {**self._data, "resources": {k: v.to_dict() for k, v in self._resources.items()}}
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
