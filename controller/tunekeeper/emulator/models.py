"""Which model a name means: a base model, a fine-tuned model, or a checkpoint.

``resolve_model(ctx, name, version)`` is how ARM deployments (arm.py), chat (dataplane/chat.py)
and job creation (continuous fine-tuning) look a model up. A name may be:

- a base model's ARM name with its version (``"gpt-4.1"`` + ``"2025-04-14"``; without a version
  the newest of that name) or its data-plane id (``"gpt-4.1-2025-04-14"``);
- a fine-tuned model ``<base>.ft-<job hex>[-<suffix>]``;
- a checkpoint id ``ftchkpt-<32 hex>`` or a checkpoint model ``<base>.ft-<job hex>:ckpt-step-N``.

Only succeeded, undeleted jobs have models, and only kept checkpoints exist. Jobs are brought
up to the clock first, so a job that finished "while nobody looked" resolves. This module reads
the store; it never writes anything but that refresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tunekeeper.emulator import catalog
from tunekeeper.emulator.context import EmulatorContext

ModelKind = Literal["base", "fine-tuned", "checkpoint"]

_FINE_TUNED = re.compile(
    r"^(?P<base>.+?)\.ft-(?P<hex>[0-9a-f]{32})(?:-(?P<suffix>[A-Za-z0-9_-]{1,40}))?(?::ckpt-step-(?P<step>\d+))?$"
)
_CHECKPOINT_ID = re.compile(r"^ftchkpt-[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    kind: ModelKind
    id: str  # base model id, fine-tuned model name, or checkpoint id
    base: catalog.BaseModel  # the base model underneath (the root of a continuous fine-tune)
    job_id: str | None  # the job that produced it (None for base models)


def resolve_model(ctx: EmulatorContext, name: str, version: str | None) -> ResolvedModel | None:
    from tunekeeper.emulator.dataplane.jobs import find_job

    base = catalog.find(name)
    if base is not None:
        return ResolvedModel("base", base.id, base, None)
    base = catalog.find_arm(name, version or None)
    if base is not None:
        return ResolvedModel("base", base.id, base, None)

    if _CHECKPOINT_ID.match(name):
        ckpt = ctx.store.get("checkpoint", name)
        if ckpt is None:
            return None
        job = find_job(ctx, ckpt["_job"])
        if job is None or name not in job["_checkpoints"]:
            return None
        root = catalog.find(job["_base"])
        return None if root is None else ResolvedModel("checkpoint", name, root, job["id"])

    match = _FINE_TUNED.match(name)
    if match is None:
        return None
    job = find_job(ctx, f"ftjob-{match['hex']}")
    if job is None:
        return None
    root = catalog.find(job["_base"])
    if root is None:
        return None
    if match["step"] is not None:
        from tunekeeper.emulator.dataplane.jobs import job_checkpoints

        for ckpt in job_checkpoints(ctx, job):
            if ckpt["fine_tuned_model_checkpoint"] == name:
                return ResolvedModel("checkpoint", ckpt["id"], root, job["id"])
        return None
    if job["status"] != "succeeded" or job.get("fine_tuned_model") != name:
        return None
    return ResolvedModel("fine-tuned", name, root, job["id"])
