"""The eval gate's file format (``gates.evalFile``) and its check against the training data.

Table-driven over small files written to tmp_path: each broken example is reported with the file,
the line and the rule; the system message of every eval example must be one the model was
trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunekeeper.datasets import validate_eval_file

SYSTEM = "Clippy is a sarcastic chatbot."


def chat(*turns: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]})


GOOD = chat(("system", SYSTEM), ("user", "Capital of France?"), ("assistant", "Paris"))


def check(tmp_path: Path, lines: list[str], training: list[str] | None = None) -> list[tuple[int, str, str]]:
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(line + "\n" for line in lines))
    trained = None
    if training is not None:
        train_file = tmp_path / "train.jsonl"
        train_file.write_text("".join(line + "\n" for line in training))
        trained = (train_file, "data/train.jsonl", "FineTuneJob/clippy")
    report = validate_eval_file(eval_file, display_path="data/eval.jsonl", training=trained)
    assert all(d.path == "data/eval.jsonl" for d in report.diagnostics)
    return [(d.line, d.severity, f"{d.code}: {d.message}") for d in report.diagnostics]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([GOOD, GOOD.replace("France", "Spain").replace("Paris", "Madrid")], []),
        (
            [GOOD, chat(("user", "Hi?"), ("assistant", "Hello"), ("user", "Bye?"))],
            [
                (
                    2,
                    "error",
                    (
                        "TK-E002: messages[2] must be the expected answer, an assistant message; "
                        "got a user message"
                    ),
                )
            ],
        ),
        (
            [chat(("user", "Hi?"), ("assistant", "  "))],
            [(1, "error", "TK-E003: messages[1].content is empty: the expected answer has no text")],
        ),
        (
            [chat(("system", SYSTEM), ("assistant", "Paris"))],
            [(1, "error", "TK-E004: example has no user message before the expected answer")],
        ),
        (
            [GOOD, "{not json", "[1, 2]"],
            [
                (2, "error", "TK-D011: line is not valid JSON: unexpected character, expected a string key"),
                (3, "error", "TK-D012: line holds a JSON list, not an object"),
            ],
        ),
        ([GOOD, "", GOOD], [(2, "warning", "TK-D013: line is blank")]),
        ([], [(0, "error", "TK-E001: file has no eval examples")]),
        (
            [json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]})],
            [(1, "error", "TK-D025: messages[0].content is missing")],
        ),
    ],
)
def test_eval_examples_are_checked_line_by_line(tmp_path: Path, lines: list[str],
                                                expected: list[tuple[int, str, str]]) -> None:
    assert check(tmp_path, lines) == expected



@pytest.mark.parametrize(
    ("lines", "training", "expected"),
    [
        ([GOOD], [GOOD] * 3, []),
        (
            [GOOD.replace("sarcastic", "friendly")],
            [GOOD] * 3,
            [
                (
                    1,
                    "error",
                    (
                        'TK-E010: system message "Clippy is a friendly chatbot." differs from the one '
                        'FineTuneJob/clippy was trained with '
                        '(data/train.jsonl:1: "Clippy is a sarcastic chatbot.")'
                    ),
                )
            ],
        ),
        (
            [chat(("user", "Capital of France?"), ("assistant", "Paris"))],
            [GOOD] * 3,
            [
                (
                    1,
                    "error",
                    (
                        "TK-E011: example has no system message, but FineTuneJob/clippy was trained with one "
                        '(data/train.jsonl:1: "Clippy is a sarcastic chatbot.")'
                    ),
                )
            ],
        ),
        (
            [GOOD],
            [chat(("user", "Capital of France?"), ("assistant", "Paris"))] * 3,
            [
                (
                    1,
                    "error",
                    (
                        'TK-E012: system message "Clippy is a sarcastic chatbot." is not in the training '
                        "data of FineTuneJob/clippy, which has none (data/train.jsonl)"
                    ),
                )
            ],
        ),
        # training data that varies its system message: any of them will do, and so does none when some
        # have none
        (
            [GOOD.replace("sarcastic", "friendly"), chat(("user", "Hi?"), ("assistant", "Hello"))],
            [GOOD, GOOD.replace("sarcastic", "friendly"), chat(("user", "Hi?"), ("assistant", "Hello"))],
            [],
        ),
    ],
)
def test_the_system_message_must_be_one_the_model_was_trained_with(
        tmp_path: Path, lines: list[str], training: list[str], expected: list[tuple[int, str, str]]) -> None:
    assert check(tmp_path, lines, training) == expected


def test_every_eval_rule_has_a_case() -> None:
    from tunekeeper.datasets._rules import RULES

    source = Path(__file__).read_text()
    assert {code for code in RULES if code.startswith("TK-E")} == {
        code for code in RULES if code.startswith("TK-E") and f"{code}: " in source}


def test_a_huge_eval_file_is_refused_by_its_size_and_junk_is_listed_in_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunekeeper.datasets import _eval

    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(GOOD + "\n" + "\n" * 20_000 + "[1]\n" * 500)
    report = validate_eval_file(eval_file, display_path="data/eval.jsonl")
    blank = [d for d in report.diagnostics if d.code == "TK-D013"]
    assert len(blank) == 101 and "19,900 more lines" in blank[0].message  # the summary sorts first
    junk = [d for d in report.diagnostics if d.code == "TK-D012"]
    assert len(junk) == 101 and junk[0].severity == "error" and "400 more lines" in junk[0].message
    monkeypatch.setattr(_eval, "MAX_EVAL_BYTES", 1000)
    refused = validate_eval_file(eval_file, display_path="data/eval.jsonl")
    size = eval_file.stat().st_size
    assert [(d.line, f"{d.code}: {d.message}") for d in refused.diagnostics] == [
        (0, f"TK-E005: eval file is {size} bytes; eval files must be smaller than 1000 bytes")]
