"""Kubernetes-style conditions, shared by the CLI state file and the operator's CR status.

``set_condition`` is pure: given the current list, a new condition and the time, it returns the
new list. ``lastTransitionTime`` moves only when ``status`` flips; reason and message may change
without a transition. Types are adjectives or past tense (``Ready``, ``Succeeded``,
``DataValidated``); reasons are one CamelCase word; messages are sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Condition:
    type: str  # Ready, Succeeded, DataValidated, Deployed, GatesPassed
    status: ConditionStatus
    reason: str  # one CamelCase word, e.g. TrainingRunning
    message: str = ""  # a sentence
    last_transition_time: str = ""  # RFC 3339, UTC
    observed_generation: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type, "status": self.status, "reason": self.reason,
                                  "message": self.message, "lastTransitionTime": self.last_transition_time}
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Condition:
        status = str(data.get("status", "Unknown"))
        gen = data.get("observedGeneration")
        return cls(
            type=str(data["type"]),
            status=status if status in ("True", "False") else "Unknown",  # type: ignore[arg-type]
            reason=str(data.get("reason", "")), message=str(data.get("message", "")),
            last_transition_time=str(data.get("lastTransitionTime", "")),
            observed_generation=None if gen is None else int(str(gen)),
        )


def set_condition(conditions: Sequence[Condition], new: Condition, now: datetime) -> tuple[Condition, ...]:
    """Return ``conditions`` with ``new`` set (by type), order kept, new types appended."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != new.type:
            out.append(cond)
            continue
        found = True
        transition = (
            cond.last_transition_time if cond.status == new.status and cond.last_transition_time else stamp
        )
        out.append(replace(new, last_transition_time=transition))
    if not found:
        out.append(replace(new, last_transition_time=stamp))
    return tuple(out)


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
