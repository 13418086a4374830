"""The CLI's local state file: ``<root>/.tunekeeper/state.json``, a cache of what was learned.

Written by ``converge`` after every loop (atomically: a temporary file renamed over the old
one), read by ``observe`` (checkpoints and results of finished jobs never change, so they are
fetched once), ``plan`` (``Known``: the previous job of a resource, deployments that once
existed) and ``status`` (conditions keep their lastTransitionTime). The cloud plus the
ownership markers stay the truth: deleting this file loses nothing but history.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from tunekeeper.cloud.base import ObservedCheckpoint
from tunekeeper.reconcile.conditions import Condition
from tunekeeper.reconcile.model import Known, MetricsSummary

STATE_FORMAT = 1
STATE_DIR = ".tunekeeper"
STATE_NAME = "state.json"


class StateFile:
    """One state file, loaded on construction (missing or unreadable = empty)."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None keeps the state in memory only (``save`` does nothing)."""
        self.path = path
        self._data: dict[str, Any] = {"format": STATE_FORMAT, "resources": {}, "jobs": {}, "evals": {}}
        if path is None:
            return
        try:
            loaded = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        if isinstance(loaded, dict) and loaded.get("format") == STATE_FORMAT:
            self._data["resources"] = dict(loaded.get("resources") or {})
            self._data["jobs"] = dict(loaded.get("jobs") or {})
            self._data["evals"] = dict(loaded.get("evals") or {})

    @classmethod
    def for_root(cls, root: Path) -> StateFile:
        return cls(root / STATE_DIR / STATE_NAME)

    # -- what plan and status read ------------------------------------------------------------
    def known(self) -> Known:
        jobs: dict[str, str] = {}
        deployments: set[str] = set()
        for key, entry in self._data["resources"].items():
            kind, _, name = key.partition("/")
            if kind == "FineTuneJob" and entry.get("job_id"):
                jobs[name] = str(entry["job_id"])
            elif kind == "Deployment" and entry.get("provisioned"):
                deployments.add(name)
        evals = {str(k): bool(v) for k, v in (self._data.get("evals") or {}).items()}
        return Known(jobs=jobs, deployments=frozenset(deployments), evals=evals)

    def resource(self, key: str) -> Mapping[str, Any]:
        """The recorded entry of ``Kind/name`` (empty when never seen)."""
        entry = self._data["resources"].get(key)
        return entry if isinstance(entry, dict) else {}

    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return dict(self._data["resources"])

    def conditions(self, key: str) -> tuple[Condition, ...]:
        return tuple(Condition.from_dict(c) for c in self.resource(key).get("conditions", ()) if isinstance(c, dict))

    # -- job details cache (finished jobs only) -----------------------------------------------
    def job_details(self, job_id: str) -> tuple[tuple[ObservedCheckpoint, ...], MetricsSummary | None] | None:
        entry = self._data["jobs"].get(job_id)
        if not isinstance(entry, dict):
            return None
        checkpoints = tuple(
            ObservedCheckpoint(id=c["id"], job_id=job_id, fine_tuned_model_checkpoint=c["model"],
                               step_number=int(c["step"]), metrics={k: float(v) for k, v in c["metrics"].items()},
                               created_at=int(c.get("created_at", 0)))
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
    def record(self, key: str, entry: Mapping[str, Any]) -> None:
        """Replace the entry of ``Kind/name``; keeps ``provisioned`` once set (drift detection)."""
        old = self.resource(key)
        new = dict(entry)
        if old.get("provisioned") and "provisioned" not in new:
            new["provisioned"] = True
        if old.get("job_id") and not new.get("job_id"):
            new["job_id"] = old["job_id"]  # the previous job of a changed spec stays known
        self._data["resources"][key] = new

    def record_eval(self, key: str, passed: bool) -> None:
        """The eval gate's verdict on one model (see ``gates.eval_key``): judged once, remembered."""
        self._data.setdefault("evals", {})[key] = passed

    def forget(self, key: str) -> None:
        self._data["resources"].pop(key, None)

    def save(self) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = orjson.dumps(self._data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
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
