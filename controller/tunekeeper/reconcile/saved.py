"""Saved plans: ``tunekeeper plan --out FILE`` writes one, ``tunekeeper apply FILE`` executes exactly it.

Called by the CLI (and by anything that reviews a plan before applying it, such as a pull
request workflow). A plan file holds the plan (typed, executable actions) and what it was made
from: the paths it was given, the sha256 of every manifest file and local data file it read,
and, inside the plan, a hash of the observed state of every object an action touches. Before
anything runs, apply refuses the file when

- it was edited by hand: a checksum over its content no longer matches (this catches edits and
  corruption; it is not a signature: whoever can write the file can also write a new plan);
- a manifest or data file changed, appeared or disappeared (``stale_inputs`` names which);
- the world changed under an action (``apply.check_fresh`` names the resource).

A plan file never holds a secret: import URLs are left out (apply takes them from the
manifests, matched by digest) and the accounts' keys were never in a plan. Nothing here talks to
the cloud.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tunekeeper.errors import PlanError, StalePlan
from tunekeeper.reconcile.model import Plan
from tunekeeper.reconcile.planning import root_relative
from tunekeeper.resources.specs import Desired

SAVED_FORMAT = "tunekeeper-plan/1"
FORMAT_KEY = "tunekeeper_plan"  # the key that tells a plan file from a manifest
MAX_PLAN_BYTES = 256 * 1024 * 1024  # a plan of thousands of resources is a few MB; larger is no plan of ours


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What a plan was made from, to tell later whether it still applies."""

    paths: tuple[str, ...]  # the manifest files and folders given to ``plan``, as given
    manifests: Mapping[str, str] = field(default_factory=dict)  # manifest file (root-relative) -> sha256
    data: Mapping[str, str] = field(default_factory=dict)  # local data file (root-relative) -> sha256

    def to_dict(self) -> dict[str, object]:
        return {"paths": list(self.paths), "manifests": dict(sorted(self.manifests.items())),
                "data": dict(sorted(self.data.items()))}


@dataclass(frozen=True, slots=True)
class SavedPlan:
    plan: Plan
    inputs: PlanInputs


def plan_inputs(desired: Desired, digests: Mapping[Path, str], paths: Sequence[str]) -> PlanInputs:
    """The digests of the manifests (read from disk here) and data files (``compute_digests``) of a run."""
    manifests = {name: _sha256(desired.root / name) for name in desired.files}
    data = {root_relative(path, desired.root): digest for path, digest in digests.items()}
    return PlanInputs(tuple(paths), manifests, data)


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return "missing"


def _body(saved: SavedPlan) -> dict[str, object]:
    return {"plan": saved.plan.to_dict(), "inputs": saved.inputs.to_dict()}


def _checksum(body: Mapping[str, object]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def dump_plan(saved: SavedPlan) -> bytes:
    """The plan file's bytes: JSON, readable in review, with a checksum over its content."""
    body = _body(saved)
    document = {FORMAT_KEY: SAVED_FORMAT, "checksum": _checksum(body), **body}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def is_plan_file(path: Path, *, limit: int = MAX_PLAN_BYTES) -> bool:
    """Does ``path`` hold a saved plan (rather than manifests)? A file over ``limit`` bytes is not read."""
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return False  # then read as manifests, whose loader refuses it by its size with a message
        with path.open("rb") as handle:
            head = handle.read(1)
            if head != b"{":
                return False
            # keys are written sorted, so the format key comes late: look at the whole document
            document = orjson.loads(head + handle.read())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(document, dict) and FORMAT_KEY in document


def load_plan(data: bytes, *, source: str = "plan file") -> SavedPlan:
    """Parse a plan file; PlanError when it is not one, was written by another format, or was edited."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PlanError(
            f"{source} is not a plan file: {exc}", hint='write one with "tunekeeper plan --out FILE"'
        ) from None
    if not isinstance(document, dict) or FORMAT_KEY not in document:
        raise PlanError(f"{source} is not a plan file", hint='write one with "tunekeeper plan --out FILE"')
    if document[FORMAT_KEY] != SAVED_FORMAT:
        raise PlanError(
            f"{source} has format {document[FORMAT_KEY]!r}; this tunekeeper reads {SAVED_FORMAT!r}",
            hint='run "tunekeeper plan --out FILE" again with this version',
        )
    body = {"plan": document.get("plan"), "inputs": document.get("inputs")}
    if document.get("checksum") != _checksum(body):
        raise PlanError(
            f"{source} was changed after it was written (its checksum does not match its content); "
            "it is not applied",
            hint='a reviewed plan is applied as written: run "tunekeeper plan --out FILE" again',
        )
    plan_data, inputs = body["plan"], body["inputs"]
    try:
        assert isinstance(plan_data, dict) and isinstance(inputs, dict)
        plan = Plan.from_dict(plan_data)
        return SavedPlan(plan, PlanInputs(
            paths=tuple(str(p) for p in inputs.get("paths") or ()),
            manifests={str(k): str(v) for k, v in dict(inputs.get("manifests") or {}).items()},
            data={str(k): str(v) for k, v in dict(inputs.get("data") or {}).items()},
        ))
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{source} is not a valid plan file ({type(exc).__name__}: {exc})",
                        hint='run "tunekeeper plan --out FILE" again') from None


def stale_inputs(saved: PlanInputs, now: PlanInputs) -> list[str]:
    """What changed in the manifests and data since the plan was made, one phrase each (empty: nothing)."""
    changes: list[str] = []
    for label, before, after in (
        ("manifest", saved.manifests, now.manifests),
        ("data file", saved.data, now.data),
    ):
        for name in sorted(set(before) | set(after)):
            if name not in after:
                changes.append(f"{label} {name} is no longer read")
            elif name not in before:
                changes.append(f"{label} {name} is new")
            elif before[name] != after[name]:
                changes.append(f"{label} {name} changed")
    return changes


def check_inputs(saved: PlanInputs, now: PlanInputs) -> None:
    """Raise StalePlan naming every manifest and data file that changed since the plan was made."""
    changes = stale_inputs(saved, now)
    if changes:
        raise StalePlan(f"Plan is stale: {'; '.join(changes)} since the plan was made. "
                        'Run "tunekeeper plan" again.',
                        hint="a saved plan applies only to the manifests and data it was made from")
