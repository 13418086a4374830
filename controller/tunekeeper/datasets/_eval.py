"""Eval files: the prompts and expected answers of a Deployment's eval gate (``gates.evalFile``).

The format (documented in docs/resources.md, "Eval files"): JSONL, one example per line, each a
supervised chat example ``{"messages": [...]}`` whose **last** message is the expected answer,
an assistant message with text; the messages before it (an optional system message, then user
and earlier assistant turns) are what the candidate model is asked. The gate passes an example
when the candidate's answer contains the expected text, case and spacing ignored.

Checks (rules TK-E0xx in ``_rules``, plus the message checks of supervised data, TK-D0xx):
every line is a chat example; it ends with a non-empty assistant answer; a user message comes
before it; and, when the FineTuneJob's training file is known, each example's system message is
one the model was trained with (none when the training examples have none). A mismatch is an
**error**: the gate would judge the model on prompts it never saw, so its verdict, which decides
promotion, would mean little.

Called by ``tunekeeper validate`` and before ``plan`` / ``apply`` (nothing is sent before it
passes). Reads the two local files; never raises for bad data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tunekeeper.datasets._examples import check_example
from tunekeeper.datasets._findings import Findings, listed
from tunekeeper.datasets._rules import diagnose, kind_of, show
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.localfiles import FileTooLarge, NotReadable, read_regular_file

BOM = b"\xef\xbb\xbf"
MAX_EVAL_BYTES = 16 << 20  # the whole file is read; a gate of a few hundred examples is some KB
MAX_SYSTEM_PROMPTS = 10_000  # distinct system messages remembered from a training file; beyond: not checked
EVAL_EXAMPLE = ('{"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}, '
                '{"role": "assistant", "content": "expected answer"}]}')


@dataclass(frozen=True, slots=True)
class TrainedPrompts:
    """The system messages a model was trained with: each distinct text and its first line."""

    job: str  # "FineTuneJob/support-bot", for messages
    path: str  # the training file as shown in diagnostics
    prompts: dict[str, int]  # system message text -> first line that uses it
    without: int  # first line of an example with no system message (0: none)
    complete: bool  # False when the file held too many distinct system messages to remember


@dataclass(frozen=True, slots=True)
class EvalReport:
    path: str
    diagnostics: tuple[Diagnostic, ...]
    examples: int  # eval examples (valid or not)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "ok": self.ok, "examples": self.examples,
                "diagnostics": [d.to_dict() for d in self.diagnostics]}


def text_of(content: object) -> str:
    """A message's text: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _system_of(messages: object) -> str | None:
    if (
        isinstance(messages, list)
        and messages
        and isinstance(messages[0], dict)
        and messages[0].get("role") == "system"
    ):
        return text_of(messages[0].get("content"))
    return None


def trained_prompts(path: Path, display: str, job: str) -> TrainedPrompts:
    """The system messages of a supervised training file (lines that do not parse are skipped:
    the dataset checks report them)."""
    prompts: dict[str, int] = {}
    without = 0
    complete = True
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.removeprefix(BOM) if number == 1 else raw
            if not line.strip():
                continue
            if b'"system"' not in line:  # the common case, without a parse
                without = without or number
                continue
            try:
                example = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            system = _system_of(example.get("messages") if isinstance(example, dict) else None)
            if system is None:
                without = without or number
            elif system not in prompts:
                if len(prompts) >= MAX_SYSTEM_PROMPTS:
                    complete = False
                    continue
                prompts[system] = number
    return TrainedPrompts(job, display, prompts, without, complete)


def validate_eval(path: Path, *, display_path: str, trained: TrainedPrompts | None = None) -> EvalReport:
    """Every problem of an eval file, sorted; ``trained`` adds the system-message check."""
    out = Findings()  # of each rule the first lines listed, the rest counted
    try:
        data = read_regular_file(path, MAX_EVAL_BYTES - 1)  # size checked before the read, and during it
    except FileTooLarge as refused:
        return EvalReport(display_path, (diagnose("TK-E005", display_path, 0, size=refused.size,
                                                  limit=MAX_EVAL_BYTES),), 0)
    except (OSError, NotReadable) as exc:
        reason = exc.reason if isinstance(exc, NotReadable) else exc.strerror or str(exc)
        return EvalReport(display_path, (diagnose("TK-D001", display_path, 0, reason=reason),), 0)
    examples = 0
    for number, raw in enumerate(data.removeprefix(BOM).splitlines(), start=1):
        if not raw.strip():
            out.append(diagnose("TK-D013", display_path, number))
            continue
        examples += 1
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out.append(diagnose("TK-D011", display_path, number, column=exc.colno, reason=exc.msg))
            continue
        if not isinstance(example, dict):
            out.append(diagnose("TK-D012", display_path, number, kind=kind_of(example), example=EVAL_EXAMPLE))
            continue
        _check(example, display_path, number, trained, out)
    if examples == 0:
        out.append(diagnose("TK-E001", display_path, 0, example=EVAL_EXAMPLE))
    return EvalReport(display_path, tuple(sorted(listed(out, out.counts, display_path))), examples)


def _check(example: dict[str, Any], path: str, line: int, trained: TrainedPrompts | None,
           out: list[Diagnostic]) -> None:
    _, errors = check_example("supervised", example, 0, path, line, out)
    messages = example.get("messages")
    if errors or not isinstance(messages, list) or not messages:
        return
    last = messages[-1]
    field = f"messages[{len(messages) - 1}]"
    if last.get("role") != "assistant":
        out.append(diagnose("TK-E002", path, line, field=field, role=last.get("role")))
        return
    if not text_of(last.get("content")).strip():
        out.append(diagnose("TK-E003", path, line, field=f"{field}.content"))
    if not any(m.get("role") == "user" for m in messages[:-1]):
        out.append(diagnose("TK-E004", path, line))
    if trained is not None and trained.complete:
        _check_system(_system_of(messages), path, line, trained, out)


def _check_system(
    system: str | None, path: str, line: int, trained: TrainedPrompts, out: list[Diagnostic]
) -> None:
    if system is None:
        if trained.prompts and not trained.without:
            text, first = next(iter(trained.prompts.items()))
            out.append(diagnose("TK-E011", path, line, job=trained.job, where=f"{trained.path}:{first}",
                                expected=show(text)))
        return
    if system in trained.prompts:
        return
    if not trained.prompts:
        out.append(
            diagnose(
                "TK-E012",
                path,
                line,
                field="messages[0].content",
                value=show(system),
                job=trained.job,
                where=trained.path,
            )
        )
        return
    text, first = next(iter(trained.prompts.items()))
    out.append(
        diagnose(
            "TK-E010",
            path,
            line,
            field="messages[0].content",
            value=show(system),
            job=trained.job,
            where=f"{trained.path}:{first}",
            expected=show(text),
        )
    )
