"""Tokens: context limits per model, o200k_base built offline, cookbook counts, and the byte bound
that lets the scanner skip the tokenizer for almost every line."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from tunekeeper.datasets import validate_bytes
from tunekeeper.datasets._examples import IMAGE_TOKENS, IMAGE_TOKENS_LOW, check_example
from tunekeeper.datasets._models import context_limit
from tunekeeper.datasets._tokens import MAX_TOKEN_BYTES, O200K_SHA256, TokenCounter, o200k_base

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        (None, 65536),
        ("gpt-4.1", 65536),
        ("gpt-4.1-2025-04-14", 65536),
        ("gpt-4.1-2025-04-14.ft-abc123", 65536),
        ("gpt-4.1-mini-2025-04-14", 65536),
        ("gpt-4.1-nano-2025-04-14", 32768),
        ("gpt-4.1-nano-2025-04-14.ft-0f1e2d", 32768),
        ("gpt-4o-2024-08-06", 65536),
        ("gpt-4o-mini-2024-07-18", 65536),
        ("gpt-35-turbo-0125", 16385),
        ("gpt-35-turbo-1106.ft-x", 16385),
        ("o4-mini-2025-04-16", 65536),
        ("some-future-model", 65536),
    ],
)
def test_context_limits(model: str | None, limit: int) -> None:
    assert context_limit(model)[0] == limit


OFFLINE_SCRIPT = textwrap.dedent("""
    import hashlib, os, socket, sys
    def refuse(*args, **kwargs):
        raise RuntimeError("network access attempted")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    from tunekeeper.datasets._tokens import O200K_FILE, O200K_PATTERN, O200K_SPECIAL_TOKENS, o200k_base
    encoding = o200k_base()
    hello = encoding.encode_ordinary("Hello, world!")
    assert hello == [13225, 11, 2375, 0], hello
    cached = os.path.join(os.environ["TUNEKEEPER_CACHE_DIR"], O200K_FILE)
    assert os.path.exists(cached)
    assert os.listdir(os.environ["TIKTOKEN_CACHE_DIR"]) == []
    # tiktoken's own definition of o200k_base, fed from its offline cache with our converted file:
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    key = hashlib.sha1(url.encode()).hexdigest()
    target_path = os.path.join(os.environ["TIKTOKEN_CACHE_DIR"], key)
    with open(cached, "rb") as source, open(target_path, "wb") as target:
        target.write(source.read())
    from tiktoken_ext.openai_public import o200k_base as definition
    reference = definition()
    assert reference["pat_str"] == O200K_PATTERN
    assert reference["special_tokens"] == O200K_SPECIAL_TOKENS
    assert reference["mergeable_ranks"] == encoding._mergeable_ranks
    print("offline ok")
""")


def test_o200k_base_loads_offline_and_matches_tiktoken(tmp_path: Path) -> None:
    (tmp_path / "tiktoken").mkdir()
    env = {**os.environ, "TUNEKEEPER_CACHE_DIR": str(tmp_path / "tunekeeper"),
           "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken")}
    result = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "offline ok" in result.stdout
    import hashlib

    assert (
        hashlib.sha256((tmp_path / "tunekeeper" / "o200k_base.tiktoken").read_bytes()).hexdigest()
        == O200K_SHA256
    )


def test_counts_follow_the_cookbook() -> None:
    encode = o200k_base().encode_ordinary
    counter = TokenCounter()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there", "name": "ann"},
        {"role": "assistant", "content": "Hello!"},
    ]
    expected = (
        3
        + sum(3 + len(encode(m["role"])) + len(encode(m["content"])) for m in messages)
        + len(encode("ann"))
        + 1
    )
    assert counter.messages(messages) == expected
    with_images = [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                 {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                                                 {"type": "image_url", "image_url": {"url": "https://x/b.png",
                                                                                     "detail": "low"}}]}]
    assert (
        counter.messages(with_images)
        == 3 + 3 + 1 + len(encode("What is it?")) + IMAGE_TOKENS + IMAGE_TOKENS_LOW
    )


WORDS = ["alpha", "beta", "Straße", "東京", "🙂", "{\"json\": true}", "  ", "\n", "x" * 40, "12345678"]


def random_example(rng: random.Random) -> dict[str, Any]:
    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))) or "ok"

    messages: list[dict[str, Any]] = [{"role": "system", "content": text()}]
    for turn in range(rng.randint(1, 3)):
        content: Any = text()
        if rng.random() < 0.3:
            content = [
                {"type": "text", "text": text()},
                {
                    "type": "image_url",
                    "image_url": {
                        "url": "data:image/png;base64," + "A" * rng.randint(0, 9000),
                        "detail": rng.choice(["low", "high", "auto"]),
                    },
                },
            ]
        messages.append(
            {"role": "user", "content": content, **({"name": "ann"} if rng.random() < 0.3 else {})}
        )
        if rng.random() < 0.3:
            call = {"id": f"c{turn}", "type": "function", "function": {"name": "f", "arguments": orjson.dumps(
                {"q": text()}).decode()}}
            messages.append({"role": "assistant", "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": f"c{turn}", "content": text()})
        messages.append({"role": "assistant", "content": text()})
    example: dict[str, Any] = {"messages": messages}
    if rng.random() < 0.3:
        example["tools"] = [{"type": "function", "function": {"name": "f", "description": text(),
                                                              "parameters": {"type": "object"}}}]
    return example


def test_byte_bound_never_undercounts() -> None:
    rng = random.Random(11)
    counter = TokenCounter()
    for _ in range(300):
        example = random_example(rng)
        line = orjson.dumps(example) + b"\n"
        out: list[Any] = []
        (_turns, _estimate, bound, _), errors = check_example("supervised", example, len(line), "f", 1, out)
        assert errors == 0, out
        _counted, needed = counter.example("supervised", example)
        assert needed <= bound, (needed, bound)


def dataset_with(example: dict[str, Any]) -> bytes:
    rows = [
        orjson.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        )
        for i in range(60)
    ]
    rows[7] = orjson.dumps(example)
    return BOM + b"\n".join(rows) + b"\n"


def test_example_over_the_context_is_an_error_for_that_model_only() -> None:
    long = {
        "messages": [{"role": "user", "content": "hello " * 20_000}, {"role": "assistant", "content": "ok"}]
    }
    data = dataset_with(long)
    small = validate_bytes(data, filename="t.jsonl", model="gpt-35-turbo-0125.ft-abc")
    (error,) = small.errors
    assert (error.code, error.line) == ("TK-D015", 8)
    assert "16385-token context of gpt-35-turbo-0125.ft-abc" in error.message
    exact = TokenCounter().example("supervised", long)[1]
    assert 20_000 < exact < 20_020 and f"has {exact} tokens" in error.message  # counted exactly
    assert validate_bytes(data, filename="t.jsonl", model="gpt-4.1-2025-04-14").ok


def test_dpo_context_holds_the_input_and_the_longer_output() -> None:
    counter = TokenCounter()
    example = {"input": {"messages": [{"role": "user", "content": "question " * 10}]},
               "preferred_output": [{"role": "assistant", "content": "good " * 30}],
               "non_preferred_output": [{"role": "assistant", "content": "bad " * 5}]}
    counted, needed = counter.example("dpo", example)
    prompt = counter.messages(example["input"]["messages"])  # type: ignore[index]
    good = counter.messages(example["preferred_output"]) - 3
    bad = counter.messages(example["non_preferred_output"]) - 3
    assert (counted, needed) == (prompt + good + bad, prompt + good)


# -- one huge line: bounded time and memory ---------------------------------------------------
def test_longest_o200k_token_is_the_bound_the_floor_assumes() -> None:
    encoding = o200k_base()
    longest = max(len(encoding.decode_single_token_bytes(rank)) for rank in range(199998))
    assert longest == MAX_TOKEN_BYTES


def huge_example(chars: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": "hello " * (chars // 6)},
            {"role": "assistant", "content": "ok"},
        ]
    }


def test_floor_proves_a_huge_example_over_the_context_without_the_tokenizer() -> None:
    """12 MB of text is at least 98,000 tokens whatever it says: over a 65,536-token context. The
    tokenizer is never loaded (a separate interpreter shows it), and the error says 'at least'."""
    script = textwrap.dedent("""
        import sys
        import orjson
        from tunekeeper.datasets import validate_bytes
        rows = [orjson.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                           {"role": "assistant", "content": "a"}]}) for i in range(20)]
        rows[3] = orjson.dumps({"messages": [{"role": "user", "content": "hello " * 2_000_000},
                                             {"role": "assistant", "content": "ok"}]})
        report = validate_bytes(b"\\n".join(rows) + b"\\n", filename="t.jsonl", model="gpt-4.1-2025-04-14")
        print([(d.code, d.line, d.message) for d in report.errors])
        print("tiktoken" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    errors, tokenizer_loaded = done.stdout.strip().splitlines()
    assert tokenizer_loaded == "False"
    assert "'TK-D016', 4" in errors and "at least 93762 tokens" in errors, errors


def test_counting_stops_once_the_context_is_exceeded() -> None:
    """3 MB of words is not provably over the context by its size, so it is counted, but only
    until the count passes four contexts: the reported figure is a lower bound, below the exact one."""
    example = huge_example(3_000_000)
    exact = TokenCounter().example("supervised", example)[1]
    (error,) = validate_bytes(dataset_with(example), filename="t.jsonl", model="gpt-4.1-2025-04-14").errors
    assert (error.code, error.line) == ("TK-D016", 8)
    reported = int(error.message.split("at least ")[1].split(" ")[0])
    assert 4 * 65_536 < reported < exact


def test_budgeted_count_is_exact_when_the_example_fits() -> None:
    """Long texts are counted in pieces cut at word boundaries, which changes no count."""
    rng = random.Random(5)
    words = [
        "naïve",
        "日本語",
        "hello",
        "world's",
        "x" * 40,
        "123456",
        "def f(x):\n    return x",
        "¿qué?",
        "🙂",
    ]
    counter = TokenCounter()
    for _ in range(5):
        text = " ".join(rng.choice(words) for _ in range(60_000))
        example = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]}
        whole = counter.messages(example["messages"])
        assert counter.example("supervised", example, ceiling=10**9) == (whole, whole)


def test_a_line_longer_than_the_scanner_holds_is_reported_not_read(tmp_path: Path) -> None:
    """A 100 MB line costs no 100 MB: it is skipped in blocks and reported; the lines after it are
    still checked (a separate interpreter measures the peak memory)."""
    from tunekeeper.datasets._scan import MAX_LINE_BYTES

    path = tmp_path / "huge.jsonl"
    good = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    with open(path, "wb") as out:
        out.write(BOM + good * 3 + b'{"messages": [{"role": "user", "content": "')
        block = b"hello " * (1 << 16)
        out.writelines(block for _ in range(MAX_LINE_BYTES // len(block) + 10))
        out.write(b'"}, {"role": "assistant", "content": "ok"}]}\n' + b"{oops\n" + good * 12)
    script = textwrap.dedent(f"""
        import re
        from pathlib import Path
        from tunekeeper.datasets import validate_dataset
        report = validate_dataset(Path({str(path)!r}))
        print([(d.code, d.line) for d in report.errors])
        # VmHWM, not ru_maxrss: that one keeps the forking test process's peak across exec
        peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
        print(report.stats.lines, peak_kb // 1024)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    errors, figures = done.stdout.strip().splitlines()
    assert errors == "[('TK-D017', 4), ('TK-D011', 5)]"
    lines, peak_mb = map(int, figures.split())
    assert lines == 17
    assert peak_mb < 100, f"peak RSS {peak_mb} MB"



def test_the_emulators_format_sniffing_reads_one_line_not_a_copy_of_the_upload() -> None:
    """The upload check first looks at the first example to tell DPO from chat; it must not copy
    the whole upload (splitting it into lines did) nor parse a huge first line in full."""
    import tracemalloc

    from tunekeeper.emulator.dataplane.files import detect_method

    dpo = b'{"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}\n'
    chat = b'{"messages": [{"role": "user", "content": "' + b"x" * (40 << 20) + b'"}]}\n' + dpo * 1000
    many = BOM + b"\n \n" + dpo * 100_000
    tracemalloc.start()
    try:
        assert detect_method(many) == "dpo"
        assert detect_method(chat) == "supervised"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes"
