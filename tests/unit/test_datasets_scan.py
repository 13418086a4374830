"""The scanner: identical results with worker processes, summary figures, the fast path's
agreement with the full check, and a corpus of junk that must yield diagnostics, never a traceback.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tunekeeper.datasets import auto_epochs, validate_bytes, validate_dataset
from tunekeeper.datasets.__main__ import main
from tunekeeper.datasets._examples import (
    MESSAGE_TOKENS,
    REPLY_TOKENS,
    check_example,
    plain_chat,
    plain_figures,
)

BOM = b"\xef\xbb\xbf"
DATA = Path(__file__).resolve().parent.parent / "data" / "datasets"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "refund",
    "order",
    "invoice",
    "password",
    "é",
    "東京",
    "🙂",
]


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def plain_example(rng: random.Random) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": text(rng, 5)})
    for _ in range(rng.randint(1, 3)):
        messages.append({"role": "user", "content": text(rng, rng.randint(1, 30))})
        answer: dict[str, Any] = {"role": "assistant", "content": text(rng, rng.randint(1, 30))}
        if rng.random() < 0.3:
            answer["weight"] = rng.choice([0, 1])
        messages.append(answer)
    messages[-1].pop("weight", None)  # keep one trainable turn
    return {"messages": messages}


def test_fast_path_agrees_with_the_full_check() -> None:
    rng = random.Random(7)
    for _ in range(500):
        line = orjson.dumps(plain_example(rng)) + b"\n"
        fast = plain_chat(line)
        out: list[Any] = []
        full, errors = check_example("supervised", orjson.loads(line), len(line), "f", 1, out)
        assert fast is not None
        assert (errors, out) == (0, [])
        assert fast == full[:3]


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test files are small: let them be cut into pieces and scanned by as many workers as asked."""
    from tunekeeper.datasets import _scan

    monkeypatch.setattr(_scan, "MIN_PIECE_BYTES", 1)


def reference_plain_figures(obj: object, size: int) -> tuple[int, int, int] | None:
    """The fast path's definition, written as the plain loop it replaces (one message at a time)."""
    if type(obj) is not dict or list(obj) != ["messages"]:
        return None
    messages = obj["messages"]
    if type(messages) is not list or not messages:
        return None
    turns = chars = 0
    for message in messages:
        if type(message) is not dict or not {"role", "content"} <= message.keys():
            return None
        role, content = message["role"], message["content"]
        if type(role) is not str or role not in ("system", "user", "assistant"):
            return None
        if type(content) is not str or not content:
            return None
        trainable = int(role == "assistant")
        extra = message.keys() - {"role", "content"}
        if extra:
            weight = message.get("weight")
            if extra != {"weight"} or role != "assistant" or type(weight) is not int or weight not in (0, 1):
                return None
            trainable = weight
        turns += trainable
        chars += len(content)
    if not turns:
        return None
    overhead = MESSAGE_TOKENS * len(messages) + REPLY_TOKENS
    return turns, chars // 4 + overhead, size + overhead


_ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 3), st.floats(0, 1), st.text(max_size=3),
    st.lists(st.integers(-5, 5), max_size=1),
    st.dictionaries(st.text(max_size=2), st.integers(-5, 5), max_size=1),
)
_PLAIN_MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user"]),
                           "content": st.text(min_size=1, max_size=6)}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.text(min_size=1, max_size=6)},
                          optional={"weight": st.sampled_from([0, 1])}),
)


_TRICKY = ["system", "user", "assistant", "tool", "", "x", 0, 1, 2, -1, True, False, 0.0, 1.0, None, [], {}]


@st.composite
def near_plain_messages(draw: st.DrawFn) -> list[Any]:
    """Plain messages, half of the time with one change that may or may not make them not plain."""
    messages: list[Any] = draw(st.lists(_PLAIN_MESSAGE, min_size=1, max_size=5))
    if draw(st.booleans()):
        index = draw(st.sampled_from([i for i, m in enumerate(messages) if m["role"] == "assistant"] or [0])
                     | st.integers(0, len(messages) - 1))
        change = draw(st.sampled_from(["set", "drop", "replace"]))
        if change == "replace":
            messages[index] = draw(_ANY_VALUE)
        else:
            key = draw(st.sampled_from(["role", "content", "weight", "name"]))
            if change == "drop":
                messages[index].pop(key, None)
            else:
                messages[index][key] = draw(st.one_of(st.sampled_from(_TRICKY), _ANY_VALUE))
    return messages


@settings(max_examples=1000, deadline=None)
@given(
    messages=st.one_of(near_plain_messages(), near_plain_messages(), near_plain_messages(), _ANY_VALUE),
    extra=st.one_of(st.none(), st.just({"tools": []})),
    top=st.sampled_from(["dict", "list"]),
)
def test_fast_path_matches_its_definition_on_near_plain_examples(messages: Any, extra: Any, top: str) -> None:
    obj: Any = {"messages": messages, **(extra or {})}
    if top == "list":
        obj = [obj]
    line = orjson.dumps(obj) + b"\n"
    parsed = orjson.loads(line)
    assert plain_figures(parsed, len(line)) == reference_plain_figures(parsed, len(line))


def test_fast_path_counts_weights_as_the_full_check_does() -> None:
    line = orjson.dumps({"messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "weight": 0}, {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "b", "weight": 1}, {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "c"},
    ]})
    out: list[Any] = []
    full, _ = check_example("supervised", orjson.loads(line), len(line), "f", 1, out)
    assert plain_chat(line) == full[:3]
    assert full[0] == 2


def test_fast_path_declines_what_it_does_not_cover() -> None:
    for example in [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]},
        {"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]},
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": True},
            ]
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "x": 1},
        {"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "name": "x"}]},
        {"messages": [{"role": "system", "content": "s", "weight": 0},
                      {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a", "weight": 1.0}]},
        {"messages": [{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a", "weight": None}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
        {"messages": [{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a", "weight": False}]},
        {"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": ["user"], "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [["user", "q"], {"role": "assistant", "content": "a"}]},
        {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": []},
        {"messages": {"role": "assistant", "content": "a"}},
    ]:
        assert plain_chat(orjson.dumps(example)) is None, example
    # a repeated key: orjson keeps the last value, and the full check must judge that one
    assert plain_chat(b'{"messages": [{"role": "user", "content": "q", "content": ""}, '
                      b'{"role": "assistant", "content": "a"}]}') is None


def spread_errors(rng: random.Random, count: int) -> list[bytes]:
    rows = [orjson.dumps(plain_example(rng)) for _ in range(count)]
    for index in range(5, count, 97):
        rows[index] = rng.choice([
            b'{"messages": [{"role": "robot", "content": "x"}]}',
            b'{"messages": [{"role": "user", "content": "trunc',
            b"\xff\xfe binary",
            b"",
            b"[1, 2, 3]",
            orjson.dumps({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": "a", "weight": 3}]}),
        ])
    rows[count - 3] = rows[10]  # duplicates across ranges
    rows[count // 2] = rows[11]
    return rows


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_identical_results(tmp_path: Path, workers: int) -> None:
    rows = spread_errors(random.Random(3), 3000)
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(rows))  # no final newline
    one = validate_dataset(path, display_path="train.jsonl")
    many = validate_dataset(path, display_path="train.jsonl", workers=workers)
    assert len(one.errors) > 20
    assert {d.code for d in one.diagnostics} >= {"TK-D011", "TK-D010", "TK-D013", "TK-D012", "TK-D024",
                                                  "TK-D036", "TK-D014"}
    assert many == one
    assert [d.render() for d in many.diagnostics] == [d.render() for d in one.diagnostics]
    assert one == validate_bytes(path.read_bytes(), filename="train.jsonl")


def test_pieces_are_shared_out_and_a_worker_that_dies_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers take pieces from one queue; the pieces a dead worker took are scanned by this process."""
    import os

    from tunekeeper.datasets import _scan

    rows = spread_errors(random.Random(5), 3000)
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    one = validate_dataset(path, display_path="train.jsonl")
    monkeypatch.setattr(_scan, "PIECE_BYTES", 16 * 1024)  # many pieces
    parent = os.getpid()
    scanned_here: list[tuple[int, int]] = []
    real = _scan._scan_file_range

    def scan_piece(path: str, start: int, end: int, settings: _scan.Settings) -> _scan.Part:
        if os.getpid() != parent:  # a worker: take one piece, then die without a word
            real(path, start, end, settings)
            os._exit(3)
        scanned_here.append((start, end))
        return real(path, start, end, settings)

    monkeypatch.setattr(_scan, "_scan_file_range", scan_piece)
    loaded: list[str] = []
    many = validate_dataset(path, display_path="train.jsonl", workers=3, meanwhile=lambda: loaded.append("x"))
    assert many == one
    assert loaded == ["x"]  # the caller's work ran once, while the workers scanned
    size = path.stat().st_size
    with open(path, "rb") as source:
        pieces = _scan.split_ranges(source, size, -(-size // (16 * 1024)))
    assert len(pieces) > 20
    # each worker died after one piece, so this process scanned every piece: once, and all of them
    assert sorted(scanned_here) == pieces


def test_workers_are_bounded_by_the_file_size_and_a_maximum(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tunekeeper.datasets import _scan

    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(plain_example(random.Random(i))) for i in range(3000)))
    one = validate_dataset(path)
    forks: list[int] = []
    real = _scan._fork_worker

    def counted(*args: Any) -> tuple[int, int]:
        forks.append(1)
        return real(*args)

    monkeypatch.setattr(_scan, "_fork_worker", counted)
    monkeypatch.setattr(_scan, "MIN_PIECE_BYTES", 1 << 20)
    assert validate_dataset(path, workers=1000) == one  # a file under 1 MB: this process alone
    assert forks == []
    monkeypatch.setattr(_scan, "MIN_PIECE_BYTES", 1)
    monkeypatch.setattr(_scan, "MAX_WORKERS", 4)
    assert validate_dataset(path, workers=1000) == one
    assert len(forks) == 3  # four processes: this one and three workers


def test_one_worker_does_not_run_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(plain_example(random.Random(i))) for i in range(20)))
    loaded: list[str] = []
    validate_dataset(path, workers=1, meanwhile=lambda: loaded.append("x"))
    assert loaded == []  # the caller does its work after the scan, as it would anyway


def test_workers_for_reinforcement_references_and_exact_tokens(tmp_path: Path) -> None:
    rows = [orjson.dumps({"messages": [{"role": "user", "content": f"q {i}"}], "answer": str(i)})
            for i in range(400)]
    rows[350] = orjson.dumps({"messages": [{"role": "user", "content": "q"}], "other": "1"})
    path = tmp_path / "rft.jsonl"
    path.write_bytes(BOM + b"\n".join(rows) + b"\n")
    one = validate_dataset(path, method="reinforcement", exact_tokens=True)
    two = validate_dataset(path, method="reinforcement", exact_tokens=True, workers=2)
    assert one == two
    assert [(d.code, d.line) for d in one.diagnostics] == [("TK-D072", 351)]
    assert "line 1" in one.diagnostics[0].message and "answer" in one.diagnostics[0].message
    assert one.stats.tokens_exact and one.stats.tokens > 400 * 7


def test_summary_figures(tmp_path: Path) -> None:
    path = DATA / "supervised.jsonl"
    report = validate_dataset(path, epochs=2)
    stats = report.stats
    assert report.ok and report.has_bom and report.diagnostics == ()
    assert (stats.bytes, stats.lines, stats.examples) == (path.stat().st_size, 60, 60)
    assert stats.assistant_turns == 60  # one of the two assistant messages has weight 0
    assert not stats.tokens_exact and stats.tokens > 0
    assert (stats.epochs, stats.billed_tokens) == (2, stats.tokens * 2)
    exact = validate_dataset(path, exact_tokens=True)
    assert exact.stats.tokens_exact and exact.stats.epochs == auto_epochs(60) == 3
    assert abs(exact.stats.tokens - stats.tokens) < 0.35 * exact.stats.tokens  # the estimate is close
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["ok"] is True and as_dict["stats"]["examples"] == 60 and as_dict["has_bom"] is True


@pytest.mark.parametrize(("examples", "epochs"), [(1, 25), (10, 10), (33, 3), (34, 3), (8333, 3), (8334, 2),
                                                   (30000, 1), (0, 3)])
def test_auto_epochs_follow_the_cookbook_rule(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


@pytest.mark.parametrize(("name", "method", "ok"), [("supervised.jsonl", "supervised", True),
                                                     ("dpo.jsonl", "dpo", True),
                                                     ("reinforcement.jsonl", "reinforcement", True),
                                                     ("malformed.jsonl", "supervised", False)])
def test_fixture_files(name: str, method: str, ok: bool) -> None:
    report = validate_dataset(DATA / name, method=method, display_path=f"datasets/{name}")
    assert report.ok is ok
    if ok:
        assert report.diagnostics == ()
    else:
        assert [(d.line, d.code) for d in report.errors] == [
            (2, "TK-D011"), (3, "TK-D010"), (5, "TK-D012"), (6, "TK-D024"), (6, "TK-D036"), (7, "TK-D032"),
            (8, "TK-D037"), (8, "TK-D035")]  # same line: sorted by message
        assert all(d.render().startswith(f"datasets/{name}:{d.line}:") for d in report.errors)


def test_module_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(DATA / "supervised.jsonl")]) == 0
    assert "60 examples" in capsys.readouterr().out
    assert main(["-o", "json", str(DATA / "malformed.jsonl")]) == 1
    captured = capsys.readouterr()
    (report,) = json.loads(captured.out)
    assert report["ok"] is False and report["diagnostics"][0]["code"]
    assert "malformed.jsonl:2:53: error: line is not valid JSON" in captured.err


# --- junk ------------------------------------------------------------------------------------


def junk_values(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, 2, -1, 1.5, 10**30])
    if choice == 3:
        return rng.choice(["", "user", "assistant", "tool", "system", "image_url", "text", "data:image/gif;b",
                           "https://x", "function"])
    if choice == 4:
        return text(rng, 2)
    if choice == 5:
        return []
    if choice == 6:
        return [junk_values(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    keys = ["role", "content", "weight", "messages", "input", "preferred_output", "non_preferred_output",
            "tool_calls", "tool_call_id", "function", "type", "text", "image_url", "url", "detail", "name",
            "arguments", "id", "tools", "functions", "parallel_tool_calls", "reference_answer"]
    return {rng.choice(keys): junk_values(rng, depth + 1) for _ in range(rng.randint(1, 4))}


def mutate(rng: random.Random, value: Any) -> Any:
    """A valid example with one node replaced by junk."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: mutate(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return value[:index] + [mutate(rng, value[index])] + value[index + 1:]
    return junk_values(rng)


def junk_lines(rng: random.Random) -> list[bytes]:
    valid = [orjson.dumps(plain_example(rng)) for _ in range(20)]
    dpo = orjson.dumps({"input": {"messages": [{"role": "user", "content": "q"}]},
                        "preferred_output": [{"role": "assistant", "content": "a"}],
                        "non_preferred_output": [{"role": "assistant", "content": "b"}]})
    lines = []
    for _ in range(400):
        kind = rng.randrange(6)
        base = rng.choice(valid + [dpo])
        if kind == 0:
            lines.append(base[: rng.randrange(len(base))])  # truncated JSON
        elif kind == 1:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))).replace(b"\n", b""))
        elif kind == 2:
            lines.append(json.dumps(mutate(rng, orjson.loads(base))).encode())
        elif kind == 3:
            lines.append(json.dumps(junk_values(rng)).encode())
        elif kind == 4:
            cut = rng.randrange(len(base))
            lines.append(base[:cut] + bytes([rng.randrange(128, 256)]) + base[cut:])  # invalid UTF-8
        else:
            lines.append(base)
    lines.append(orjson.dumps({"messages": [{"role": "user", "content": "word " * 600_000}]}))  # huge line
    return lines


@pytest.mark.parametrize("method", ["supervised", "dpo", "reinforcement"])
def test_junk_yields_diagnostics_not_exceptions(tmp_path: Path, method: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tunekeeper.datasets import _findings

    rng = random.Random(method)
    lines = junk_lines(rng)
    data = b"\n".join(lines)
    path = tmp_path / "junk.jsonl"
    path.write_bytes(data)
    with monkeypatch.context() as patched:
        patched.setattr(_findings, "MAX_PER_RULE", 10_000)  # every line listed
        report = validate_bytes(data, filename="junk.jsonl", method=method, model="gpt-35-turbo-0125")
        assert not report.ok
        bad_lines = {d.line for d in report.errors}
        assert len(bad_lines) > 100
        assert len(lines) in bad_lines  # the huge line: over the context, or not a valid example
        assert validate_dataset(path, method=method, display_path="junk.jsonl", workers=2,
                                model="gpt-35-turbo-0125") == report
    capped = validate_bytes(data, filename="junk.jsonl", method=method, model="gpt-35-turbo-0125")
    assert validate_dataset(path, method=method, display_path="junk.jsonl", workers=3,
                            model="gpt-35-turbo-0125") == capped
    assert len(capped.errors) < len(report.errors)


def test_binary_garbage_file(tmp_path: Path) -> None:
    rng = random.Random(1)
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(200_000)))
    report = validate_dataset(path, workers=2)
    assert not report.ok and report.stats.bytes == 200_000
    assert all(
        d.code in {"TK-D010", "TK-D011", "TK-D012", "TK-D013", "TK-D003", "TK-D004", "TK-D005", "TK-D014"}
        for d in report.diagnostics
    )


def test_duplicate_search_with_a_set_and_with_numpy_agree() -> None:
    from array import array

    from tunekeeper.datasets._scan import Part, repeated_hashes

    rng = random.Random(5)
    first = Part(hashes=array("Q", [rng.getrandbits(60) for _ in range(3000)] + [0, 0]))
    second = Part(hashes=array("Q", [rng.getrandbits(60) for _ in range(3000)] + [0]))
    assert repeated_hashes([first, second]) == repeated_hashes([first, second], numpy_above=0) == set()
    second.hashes[10] = first.hashes[5]
    second.hashes[20] = first.hashes[5]
    first.hashes[100] = first.hashes[200]
    expected = {first.hashes[5], first.hashes[200]}
    assert repeated_hashes([first, second]) == repeated_hashes([first, second], numpy_above=0) == expected


def test_duplicate_search_in_numpy_holds_one_copy_of_the_hashes() -> None:
    """A file of millions of tiny examples: the sorted copy is the only one (comparing it with a
    Python int made numpy copy it again, 46 MB more for 6 million lines)."""
    import tracemalloc
    from array import array

    import numpy
    from tunekeeper.datasets._scan import Part, repeated_hashes

    part = Part(hashes=array("Q", numpy.arange(1, 1_000_001, dtype=numpy.uint64).tobytes()))
    part.hashes[500] = part.hashes[400]
    tracemalloc.start()
    try:
        assert repeated_hashes([part], numpy_above=0) == {401}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * 8 * 1_000_000  # the sorted copy, and an eighth for the comparison


def test_ranges_start_at_line_starts_even_around_a_giant_line(tmp_path: Path) -> None:
    import io
    import itertools

    from tunekeeper.datasets._scan import split_ranges

    data = b"a\n" + b"x" * 300_000 + b"\nb\nc\n"
    ranges = split_ranges(io.BytesIO(data), len(data), 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(ranges))
    assert all(data[start - 1: start] == b"\n" for start, _ in ranges[1:])
    assert [start for start, _ in ranges] == [0, 300_003, 300_005]  # no cut inside the giant line


def test_worker_count_follows_file_size_and_cores() -> None:
    from tunekeeper.datasets import BYTES_PER_WORKER, auto_workers

    assert auto_workers(3 * 1024 * 1024, cores=2) == 1  # a fork costs more than it saves
    assert auto_workers(10 * 1024 * 1024, cores=2) == 2
    assert auto_workers(2 * BYTES_PER_WORKER, cores=2) == 2
    assert auto_workers(500 * 1024 * 1024, cores=2) == 2  # never more than the cores
    assert auto_workers(500 * 1024 * 1024, cores=8) == 8
    assert auto_workers(0, cores=4) == 1


def _good_line(index: int) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": f"question {index}"},
                                      {"role": "assistant", "content": f"answer {index}"}]})


def test_a_rule_is_listed_at_most_a_hundred_times_and_the_rest_counted(tmp_path: Path) -> None:
    from tunekeeper.datasets._findings import MAX_PER_RULE

    rows = [_good_line(i) for i in range(60)] + [b"[1]"] * 1000 + [_good_line(0)] * 300
    data = b"\n".join(rows) + b"\n"
    report = validate_bytes(data, filename="many.jsonl")
    listed = [d for d in report.diagnostics if d.code == "TK-D012" and d.line]
    assert [d.line for d in listed] == list(range(61, 61 + MAX_PER_RULE))  # the first ones, in order
    (summary,) = [d for d in report.diagnostics if d.code == "TK-D012" and not d.line]
    assert summary.severity == "error"
    assert "900 more lines" in summary.message and "1,000 in all" in summary.message
    duplicates = [d for d in report.diagnostics if d.code == "TK-D014" and d.line]
    assert len(duplicates) == MAX_PER_RULE
    assert duplicates[0].line == 1061 and "line 1" in duplicates[0].message
    (more,) = [d for d in report.diagnostics if d.code == "TK-D014" and not d.line]
    assert "200 more lines" in more.message  # 300 copies of line 1: 300 duplicates, 100 listed
    assert not report.ok
    path = tmp_path / "many.jsonl"
    path.write_bytes(data)
    assert validate_dataset(path, display_path="many.jsonl", workers=3) == report


def test_blank_lines_are_counted_in_bulk_and_line_numbers_stay_right(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tunekeeper.datasets import _scan
    from tunekeeper.datasets._findings import MAX_PER_RULE

    data = (b"\n".join(_good_line(i) for i in range(60)) + b"\n" + b"\n" * 50_000
            + _good_line(7) + b"\n" + b"\n\n" + b"[1]\n")
    report = validate_bytes(data, filename="blank.jsonl")
    blank = [d for d in report.diagnostics if d.code == "TK-D013" and d.line]
    assert [d.line for d in blank[:3]] == [61, 62, 63] and len(blank) == MAX_PER_RULE
    (summary,) = [d for d in report.diagnostics if d.code == "TK-D013" and not d.line]
    assert "49,902 more lines" in summary.message and summary.severity == "warning"  # 50,002 in all
    duplicate = [d for d in report.diagnostics if d.code == "TK-D014"]
    assert [(d.line, "line 8" in d.message) for d in duplicate] == [(50_061, True)]
    assert [d.line for d in report.diagnostics if d.code == "TK-D012"] == [50_064]
    path = tmp_path / "blank.jsonl"
    path.write_bytes(data)
    monkeypatch.setattr(_scan, "PIECE_BYTES", 4096)  # pieces that start and end inside the blank run
    assert validate_dataset(path, display_path="blank.jsonl", workers=3) == report
    assert validate_dataset(path, display_path="blank.jsonl", workers=1) == report
