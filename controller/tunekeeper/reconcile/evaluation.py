"""The eval gate: a Deployment's ``gates.evalFile`` must pass against the candidate model first.

Called by ``apply`` for an ``EVALUATE_MODEL`` action (its ``EvalPayload``). The candidate is deployed under a
temporary name (``<name>-tk-eval``, tagged as tunekeeper's own, so a crash leftover is reused or
pruned), every example of the eval file is sent to it without its final assistant turn, and
the answer must contain that expected turn (case and spacing ignored). Then the candidate is
deleted and the verdict recorded; the real deployment is created or updated only when every
example passed. The file format (chat examples whose last message is the expected answer) is
defined and checked by ``tunekeeper.datasets`` (``validate_eval_file``; docs/gates.md) before any
plan is made; ``read_cases`` here only reads what that check accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from tunekeeper.cloud.base import Cloud
from tunekeeper.errors import PermanentCloudError, TunekeeperError
from tunekeeper.reconcile.model import EvalPayload


@dataclass(frozen=True, slots=True)
class EvalCase:
    prompt: tuple[Mapping[str, object], ...]  # the messages sent
    expected: str  # the final assistant turn the answer must contain


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    message: str  # a sentence: how many passed, and the first failure


def read_cases(path: Path, display: str) -> list[EvalCase]:
    """Eval examples from a JSONL file; a line that is not a chat example is an error naming it."""
    cases: list[EvalCase] = []
    for number, raw in enumerate(path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            example = orjson.loads(raw)
            messages = example["messages"]
            *prompt, last = messages
            if last.get("role") != "assistant" or not prompt:
                raise ValueError("the last message must be the expected assistant answer")
            cases.append(EvalCase(tuple(prompt), str(last.get("content") or "")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TunekeeperError(
                f"{display}:{number}: not an eval example ({exc})",
                hint='write {"messages": [..., {"role": "assistant", "content": "expected"}]}',
            ) from None
    if not cases:
        raise TunekeeperError(f"{display}: no eval examples", hint="add at least one chat example")
    return cases


def judge(cases: Sequence[EvalCase], answers: Sequence[str]) -> Verdict:
    """Every answer must contain its expected text (case and whitespace ignored). Pure."""
    failures = [i for i, (case, answer) in enumerate(zip(cases, answers, strict=True))
                if _norm(case.expected) not in _norm(answer)]
    if not failures:
        return Verdict(True, f"All {len(cases)} eval examples passed.")
    first = cases[failures[0]]
    return Verdict(False, f"{len(cases) - len(failures)} of {len(cases)} eval examples passed; example "
                          f"{failures[0] + 1} expected {first.expected[:60]!r}.")


async def evaluate(cloud: Cloud, payload: EvalPayload, root: Path) -> Verdict:
    """Deploy the candidate under its temporary name, ask it every example, delete it, judge."""
    if not payload.eval_path:
        raise TunekeeperError(
            f"Deployment {payload.deployment}: spec.gates.evalFile must be a file in the repository"
        )
    cases = read_cases(root / payload.eval_path, payload.eval_display or payload.eval_path)
    name = payload.candidate.name
    operation = await cloud.begin_create_deployment(payload.candidate)
    candidate = await operation.result()
    if candidate is not None and candidate.provisioning_state == "Failed":
        raise PermanentCloudError(f"The eval candidate {name} failed to provision")
    answers = [await cloud.chat(name, list(case.prompt)) for case in cases]
    await (await cloud.begin_delete_deployment(name)).result()
    return judge(cases, answers)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())
