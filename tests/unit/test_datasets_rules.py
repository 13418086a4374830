"""Every dataset rule, with a failing and a passing example, through the public API.

Each case puts one example (or a file-level condition) into an otherwise valid file and checks
which rule codes fire on which line, that the message names the file and the line, and that the
passing variant raises nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tunekeeper.datasets import validate_bytes, validate_dataset
from tunekeeper.datasets._rules import RULES

BOM = b"\xef\xbb\xbf"
LABEL = "data/train.jsonl"
LINE = 3  # where the example under test goes


def filler(method: str, index: int) -> dict[str, Any]:
    if method == "dpo":
        return {
            "input": {"messages": [{"role": "user", "content": f"question {index}"}]},
            "preferred_output": [{"role": "assistant", "content": f"good answer {index}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"bad answer {index}"}],
        }
    if method == "reinforcement":
        return {
            "messages": [{"role": "user", "content": f"question {index}"}],
            "reference_answer": str(index),
        }
    return {"messages": [{"role": "user", "content": f"question {index}"},
                         {"role": "assistant", "content": f"answer {index}"}]}


def dataset(method: str, example: object, *, total: int = 60) -> bytes:
    rows = [orjson.dumps(filler(method, i)) for i in range(total)]
    rows[LINE - 1] = example if isinstance(example, bytes) else orjson.dumps(example)
    return BOM + b"\n".join(rows) + b"\n"


def codes_at(data: bytes, method: str, **kwargs: Any) -> dict[int, set[str]]:
    report = validate_bytes(data, filename=LABEL, method=method, **kwargs)
    found: dict[int, set[str]] = {}
    for d in report.diagnostics:
        found.setdefault(d.line, set()).add(d.code or "")
        where = f"{LABEL}:{d.line}:" if d.line else f"{LABEL}:"
        assert d.render().startswith(where), d.render()
        assert d.message and d.hint
    return found


def user(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


def bot(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def chat(*messages: Any, **top: Any) -> dict[str, Any]:
    return {"messages": list(messages), **top}


def image(url: str = "https://example.com/a.png", **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
PNG = "data:image/png;base64,iVBORw0KGgo="

# (code, method, failing example, passing example)
CASES: list[tuple[str, str, object, object]] = [
    ("TK-D010", "supervised", b'{"messages": "\xff\xfe"}', chat(user(), bot())),
    ("TK-D011", "supervised", b'{"messages": [{"role": "user"', chat(user(), bot())),
    ("TK-D012", "supervised", b'[{"role": "user"}]', chat(user(), bot())),
    ("TK-D012", "supervised", b'"just a string"', chat(user(), bot())),
    ("TK-D013", "supervised", b"   ", chat(user(), bot())),
    ("TK-D020", "supervised", {"tools": TOOLS}, chat(user(), bot(), tools=TOOLS)),
    ("TK-D021", "supervised", chat(), chat(user(), bot())),
    ("TK-D021", "supervised", {"messages": "hi"}, chat(user(), bot())),
    ("TK-D022", "supervised", chat("hi", bot()), chat(user(), bot())),
    ("TK-D023", "supervised", chat({"content": "hi"}, bot()), chat(user(), bot())),
    ("TK-D024", "supervised", chat({"role": "bot", "content": "hi"}, bot()), chat(user(), bot())),
    (
        "TK-D025",
        "supervised",
        chat({"role": "user"}, bot()),
        chat(
            user(),
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            bot(),
        ),
    ),
    ("TK-D026", "supervised", chat(user(5), bot()), chat(user([{"type": "text", "text": "hi"}]), bot())),  # type: ignore[arg-type]
    ("TK-D027", "supervised", chat(user(["hi"]), bot()), chat(user([{"type": "text", "text": "hi"}]), bot())),  # type: ignore[arg-type]
    ("TK-D028", "supervised", chat(user([{"type": "audio"}]), bot()), chat(user([image()]), bot())),  # type: ignore[arg-type]
    (
        "TK-D029",
        "supervised",
        chat(user([{"type": "text", "text": 5}]), bot()),  # type: ignore[arg-type]
        chat(user([{"type": "text", "text": "5"}]), bot()),
    ),  # type: ignore[arg-type]
    (
        "TK-D030",
        "supervised",
        chat(user([{"type": "image_url", "image_url": "https://x/a.png"}]), bot()),  # type: ignore[arg-type]
        chat(user([image()]), bot()),
    ),  # type: ignore[arg-type]
    (
        "TK-D031",
        "supervised",
        chat(user([image("ftp://example.com/a.png")]), bot()),  # type: ignore[arg-type]
        chat(user([image(PNG)]), bot()),
    ),  # type: ignore[arg-type]
    (
        "TK-D032",
        "supervised",
        chat(user([image("data:image/gif;base64,R0lG")]), bot()),  # type: ignore[arg-type]
        chat(user([image("data:image/webp;base64,UklG")]), bot()),
    ),  # type: ignore[arg-type]
    (
        "TK-D033",
        "supervised",
        chat(user([image(detail="medium")]), bot()),  # type: ignore[arg-type]
        chat(user([image(detail="low"), image(detail="high"), image(detail="auto")]), bot()),
    ),  # type: ignore[arg-type]
    ("TK-D034", "supervised", chat(user(), bot([image()])), chat(user([image()]), bot())),  # type: ignore[arg-type]
    ("TK-D035", "supervised", chat(user(weight=1), bot()), chat(user(), bot(weight=1))),
    (
        "TK-D036",
        "supervised",
        chat(user(), bot(weight=2)),
        chat(user(), bot(weight=0), user(), bot(weight=1)),
    ),
    ("TK-D036", "supervised", chat(user(), bot(weight=True)), chat(user(), bot(weight=1))),
    ("TK-D036", "supervised", chat(user(), bot(weight=0.5)), chat(user(), bot(weight=1))),
    ("TK-D037", "supervised", chat(user(), bot(weight=0)), chat(user(), bot(weight=0), user(), bot())),
    ("TK-D037", "supervised", chat(user()), chat(user(), bot())),
    ("TK-D038", "supervised", chat(user(mood="happy"), bot()), chat(user(name="ann"), bot())),
    (
        "TK-D039",
        "supervised",
        chat(user(), bot("")),
        chat(
            user(),
            bot("", tool_calls=[CALL]),
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            bot(),
        ),
    ),
    ("TK-D040", "supervised", chat(user(""), bot()), chat(user("?"), bot())),
    ("TK-D041", "supervised", chat(user(name=5), bot()), chat(user(name="ann"), bot())),
    (
        "TK-D041",
        "supervised",
        chat(user(), {"role": "assistant", "tool_calls": [{**CALL, "id": 7}]}, bot()),
        chat(
            user(),
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            bot(),
        ),
    ),
    ("TK-D042", "supervised", chat(user(tool_calls=[CALL]), bot()), chat(user(), bot(tool_calls=[CALL]))),
    ("TK-D043", "supervised", chat(user(), bot(tool_calls=[])), chat(user(), bot(tool_calls=[CALL]))),
    ("TK-D044", "supervised", chat(user(), bot(tool_calls=["lookup"])), chat(user(), bot(tool_calls=[CALL]))),
    (
        "TK-D045",
        "supervised",
        chat(user(), bot(tool_calls=[{**CALL, "type": "fn"}])),
        chat(user(), bot(tool_calls=[CALL])),
    ),
    (
        "TK-D046",
        "supervised",
        chat(user(), bot(tool_calls=[CALL]), {"role": "tool", "content": "42"}, bot()),
        chat(
            user(), bot(tool_calls=[CALL]), {"role": "tool", "tool_call_id": "call_1", "content": "42"}, bot()
        ),
    ),
    (
        "TK-D047",
        "supervised",
        chat(
            user(), bot(tool_calls=[CALL]), {"role": "tool", "tool_call_id": "call_9", "content": "42"}, bot()
        ),
        chat(
            user(), bot(tool_calls=[CALL]), {"role": "tool", "tool_call_id": "call_1", "content": "42"}, bot()
        ),
    ),
    ("TK-D048", "supervised", chat(user(), bot(), tools="lookup"), chat(user(), bot(), tools=TOOLS)),
    (
        "TK-D048",
        "supervised",
        chat(user(), bot(), functions={"name": "f"}),
        chat(user(), bot(), functions=[{"name": "f"}]),
    ),
    (
        "TK-D049",
        "supervised",
        chat(user(), bot(), parallel_tool_calls="yes"),
        chat(user(), bot(), parallel_tool_calls=False),
    ),
    ("TK-D050", "supervised", chat(user(), bot(), label="x"), chat(user(), bot())),
    # DPO
    ("TK-D060", "dpo", {"preferred_output": [bot()], "non_preferred_output": [bot("no")]}, filler("dpo", 99)),
    ("TK-D060", "dpo", {"input": {"messages": [user()]}, "preferred_output": [bot()]}, filler("dpo", 99)),
    (
        "TK-D061",
        "dpo",
        {"input": "hi", "preferred_output": [bot()], "non_preferred_output": [bot("no")]},
        filler("dpo", 99),
    ),
    (
        "TK-D062",
        "dpo",
        {
            "input": {"messages": [user(), bot()]},
            "preferred_output": [bot()],
            "non_preferred_output": [bot("no")],
        },
        {
            "input": {"messages": [user(), bot(), user("and?")], "tools": TOOLS, "parallel_tool_calls": True},
            "preferred_output": [bot()],
            "non_preferred_output": [bot("no")],
        },
    ),
    (
        "TK-D063",
        "dpo",
        {
            "input": {"messages": [user()]},
            "preferred_output": [bot(), bot("more")],
            "non_preferred_output": [bot("no")],
        },
        filler("dpo", 99),
    ),
    (
        "TK-D064",
        "dpo",
        {"input": {"messages": [user()]}, "preferred_output": [user()], "non_preferred_output": [bot("no")]},
        filler("dpo", 99),
    ),
    (
        "TK-D065",
        "dpo",
        {"input": {"messages": [user()]}, "preferred_output": [bot()], "non_preferred_output": [bot()]},
        filler("dpo", 99),
    ),
    ("TK-D050", "dpo", {**filler("dpo", 99), "messages": []}, filler("dpo", 99)),
    (
        "TK-D021",
        "dpo",
        {"input": {"messages": []}, "preferred_output": [bot()], "non_preferred_output": [bot("no")]},
        filler("dpo", 99),
    ),
    # reinforcement
    (
        "TK-D070",
        "reinforcement",
        {"messages": [user(), bot()], "reference_answer": "1"},
        {"messages": [user(), bot(), user("again")], "reference_answer": "1"},
    ),
    ("TK-D071", "reinforcement", {"messages": [user()]}, {"messages": [user()], "reference_answer": "7"}),
    (
        "TK-D072",
        "reinforcement",
        {"messages": [user()], "expected": "7"},
        {"messages": [user()], "reference_answer": "7"},
    ),
    ("TK-D020", "reinforcement", {"reference_answer": "7"}, {"messages": [user()], "reference_answer": "7"}),
]


@pytest.mark.parametrize(("code", "method", "bad", "good"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_rule_fails_and_passes(code: str, method: str, bad: object, good: object) -> None:
    failing = codes_at(dataset(method, bad), method)
    assert code in failing.get(LINE, set()), failing
    passing = codes_at(dataset(method, good), method)
    assert passing == {}, passing


def test_every_line_rule_has_a_case() -> None:
    file_rules = {"TK-D001", "TK-D002", "TK-D003", "TK-D004", "TK-D005", "TK-D014", "TK-D015", "TK-D016",
                  "TK-D017"}  # the last three: test_datasets_tokens
    covered = {case[0] for case in CASES} | file_rules
    # TK-E0xx: eval files, test_eval_file.py
    training_rules = {code for code in RULES if code.startswith("TK-D")}
    assert covered == training_rules, training_rules ^ covered


def test_rule_severities_and_codes_are_stable() -> None:
    assert all(code == rule.code and code[:4] in ("TK-D", "TK-E") for code, rule in RULES.items())
    assert RULES["TK-D003"].severity == "warning"  # a missing BOM is added on upload
    assert RULES["TK-D004"].severity == "error" and RULES["TK-D005"].severity == "warning"


def test_message_names_the_checked_value_and_field() -> None:
    report = validate_bytes(dataset("supervised", chat(user(), bot(weight=7))), filename=LABEL)
    (weight,) = [d for d in report.diagnostics if d.code == "TK-D036"]
    assert weight.field_path == "messages[1].weight"
    assert weight.render() == (f"{LABEL}:{LINE}: error: messages[1].weight must be 0 or 1, got 7\n"
                               "  hint: use 1 to train on this message and 0 to skip it")


def test_json_error_has_the_column_orjson_reports() -> None:
    report = validate_bytes(dataset("supervised", b'{"messages": [1 2]}'), filename=LABEL)
    (error,) = report.errors
    assert (error.code, error.line, error.column) == ("TK-D011", LINE, 17)


def test_invalid_utf8_names_the_byte() -> None:
    report = validate_bytes(dataset("supervised", b'{"messages": "ab\xc3\x28"}'), filename=LABEL)
    (error,) = report.errors
    assert (error.code, error.line, error.column) == ("TK-D010", LINE, 17)
    assert "0xc3" in error.message


# --- file level ------------------------------------------------------------------------------


def sft_rows(count: int) -> list[bytes]:
    return [orjson.dumps(filler("supervised", i)) for i in range(count)]


def test_missing_bom_is_a_warning_and_reported() -> None:
    data = b"\n".join(sft_rows(60)) + b"\n"
    report = validate_bytes(data, filename=LABEL)
    assert report.ok and not report.has_bom
    assert [d.code for d in report.diagnostics] == ["TK-D003"]
    assert "apply" in (report.diagnostics[0].hint or "")
    with_bom = validate_bytes(BOM + data, filename=LABEL)
    assert with_bom.has_bom and with_bom.diagnostics == ()
    assert with_bom.stats.examples == report.stats.examples == 60


@pytest.mark.parametrize(("count", "codes"), [(0, {"TK-D004"}), (9, {"TK-D004"}), (10, {"TK-D005"}),
                                               (49, {"TK-D005"}), (50, set())])
def test_example_count_limits(count: int, codes: set[str]) -> None:
    report = validate_bytes(BOM + b"".join(row + b"\n" for row in sft_rows(count)), filename=LABEL)
    assert {d.code for d in report.diagnostics} == codes
    assert report.ok == ("TK-D004" not in codes)


def test_duplicates_name_both_lines() -> None:
    rows = sft_rows(60)
    rows[40] = rows[4]
    rows[59] = rows[4]
    report = validate_bytes(BOM + b"\n".join(rows), filename=LABEL)  # the last line has no newline
    assert [(d.code, d.line) for d in report.diagnostics] == [("TK-D014", 41), ("TK-D014", 60)]
    assert all("line 5" in d.message for d in report.diagnostics)


def test_blank_lines_mid_file_warn_but_a_final_newline_does_not() -> None:
    rows = sft_rows(60)
    data = BOM + b"\n".join(rows[:30]) + b"\n\n \t\r\n" + b"\n".join(rows[30:]) + b"\n"
    report = validate_bytes(data, filename=LABEL)
    assert [(d.code, d.line) for d in report.diagnostics] == [("TK-D013", 31), ("TK-D013", 32)]
    assert report.ok and report.stats.lines == 62 and report.stats.examples == 60


def test_crlf_line_endings_are_fine() -> None:
    report = validate_bytes(BOM + b"\r\n".join(sft_rows(60)) + b"\r\n", filename=LABEL)
    assert report.diagnostics == () and report.stats.examples == 60


def test_unreadable_file(tmp_path: Path) -> None:
    report = validate_dataset(tmp_path / "missing.jsonl", display_path="missing.jsonl")
    assert not report.ok
    assert [d.code for d in report.diagnostics] == ["TK-D001"]
    assert report.diagnostics[0].render().startswith("missing.jsonl: error: cannot read the file")
    folder = validate_dataset(tmp_path)
    assert [d.code for d in folder.diagnostics] == ["TK-D001"]


def test_file_of_512_mb_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.write(BOM)
        handle.truncate(512 * 1024 * 1024)  # sparse: no disk space, no read
    report = validate_dataset(big)
    assert [d.code for d in report.errors] == ["TK-D002"]
    assert report.stats.bytes == 512 * 1024 * 1024 and report.has_bom
    small = tmp_path / "small.jsonl"
    small.write_bytes(BOM + b"\n".join(sft_rows(60)))
    assert validate_dataset(small).ok


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="method"):
        validate_bytes(b"", filename="x", method="rlhf")
    with pytest.raises(ValueError, match="workers"):
        validate_dataset(Path("x"), workers=0)
    with pytest.raises(ValueError, match="epochs"):
        validate_dataset(Path("x"), epochs=0)


def test_byte_order_mark_inside_the_file_is_a_json_error() -> None:
    rows = sft_rows(60)
    rows[20] = BOM + rows[20]  # two files joined with cat
    report = validate_bytes(BOM + b"\n".join(rows), filename=LABEL)
    (error,) = report.errors
    assert (error.code, error.line, error.column) == ("TK-D011", 21, 1)
    assert "byte order mark" in error.message and report.has_bom
