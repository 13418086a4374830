"""Benchmark: dataset validation throughput and memory against plain per-line JSON parsing.

In one run, for each size (default 10, 100 and 500 MB) it generates a synthetic chat dataset
(system/user/assistant turns, a third multi-turn with ``weight``, one example in a hundred with
tools or an image), then times, each in a fresh interpreter so peak RSS is that mode's own:

- ``orjson``     the floor: ``for line in file: orjson.loads(line)`` (same 1 MiB read buffer as ours)
- ``json``       the same loop with the standard library's ``json.loads``
- ``validate``   ``validate_dataset`` with every check, ``workers=1``
- ``validate-2`` the same with ``workers=2`` (byte ranges in two processes)

and prints MB/s, the ratio to the orjson loop, and peak RSS (largest of the process and its
children). Times are the best of ``--repeat`` runs (the modes interleaved), measured inside the
child around the work, imports excluded (the end-to-end figure includes them).
Then it times ``python -m tunekeeper.datasets FILE`` end to end (interpreter start included) on the
smallest file. Targets: validate >= 50% of orjson, validate-2 >= 90%, peak RSS < 100 MB, the
end-to-end run < 0.2 s. Exit code 1 when a target is missed.

Usage: python bench/datasets_throughput.py [--sizes 10,100,500] [--repeat 3] [--dir DIR]
Generated files go to a temporary folder (under --dir if given) and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

MB = 1024 * 1024
MODES = ("orjson", "json", "validate", "validate-2")
TARGETS = {"validate": 0.5, "validate-2": 0.9}
RSS_LIMIT_MB = 100
END_TO_END_LIMIT_S = 0.2

WORKLOAD = r"""
import json, resource, sys, time
from pathlib import Path
import orjson
import tunekeeper.datasets._scan  # noqa: F401  (imported lazily by validate_dataset)
from tunekeeper.datasets import validate_dataset
mode, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()  # imports above are not timed: the end-to-end figure covers them
if mode in ("orjson", "json"):
    loads = orjson.loads if mode == "orjson" else json.loads
    with open(path, "rb", buffering=1 << 20) as source:
        for line in source:
            loads(line)
else:
    report = validate_dataset(Path(path), workers=2 if mode == "validate-2" else 1)
    assert report.ok, [d.render() for d in report.diagnostics[:5]]
elapsed = time.perf_counter() - start
rss_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": elapsed, "rss_mb": rss_kb / 1024}))
"""

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "support",
    "ticket",
    "refund",
    "order",
    "account",
    "password",
    "reset",
    "billing",
    "invoice",
    "please",
    "help",
    "thanks",
    "shipping",
    "delivery",
    "address",
    "warranty",
    "upgrade",
    "plan",
    "cancel",
    "subscription",
    "café",
    "naïve",
    "東京",
    "sorry",
    "happy",
]


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


def example(rng: random.Random, index: int) -> dict[str, object]:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "You are Clippy, a helpful and slightly sarcastic support assistant."},
        {"role": "user", "content": f"[{index}] " + sentence(rng, 10, 120)},
        {"role": "assistant", "content": sentence(rng, 20, 200)},
    ]
    if rng.random() < 0.33:
        messages[2]["weight"] = 0
        messages += [{"role": "user", "content": sentence(rng, 5, 40)},
                     {"role": "assistant", "content": sentence(rng, 10, 80), "weight": 1}]
    record: dict[str, object] = {"messages": messages}
    extra = rng.random()
    if extra < 0.005:
        record["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Find an order",
                    "parameters": {"type": "object"},
                },
            }
        ]
        messages.insert(
            2,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": '{"id": 7}'},
                    }
                ],
            },
        )
        messages.insert(3, {"role": "tool", "tool_call_id": "call_1", "content": "shipped"})
    elif extra < 0.01:
        messages[1]["content"] = [{"type": "text", "text": sentence(rng, 5, 20)},
                                  {"type": "image_url", "image_url": {"url": "https://example.com/receipt.png",
                                                                      "detail": "low"}}]
    return record


def generate(path: Path, size_mb: int) -> int:
    """Write a valid dataset of about ``size_mb`` MB; returns its size in bytes."""
    rng = random.Random(size_mb)
    target = size_mb * MB
    written = 0
    index = 0
    with open(path, "wb") as sink:  # no BOM, so the plain loops parse line 1 too (ours warns about it)
        batch: list[bytes] = []
        while written < target:
            line = orjson.dumps(example(rng, index)) + b"\n"
            index += 1
            batch.append(line)
            written += len(line)
            if len(batch) >= 2000:
                sink.write(b"".join(batch))
                batch = []
        sink.write(b"".join(batch))
    return written


def run_once(mode: str, path: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``mode`` in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", WORKLOAD, mode, str(path)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed on {path}:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures["seconds"], figures["rss_mb"]


def end_to_end(path: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "tunekeeper.datasets", str(path)], capture_output=True,
                                check=False)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"python -m tunekeeper.datasets failed:\n{result.stderr.decode()}")
        best = min(best, elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500", help="comma-separated sizes in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time is kept)")
    parser.add_argument(
        "--dir", default=None, help="where to put the generated files (a temporary folder inside)"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]

    folder = Path(tempfile.mkdtemp(prefix="tk-bench-", dir=args.dir))
    missed: list[str] = []
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every mode)")
    print(f"{'size':>6} {'mode':<11} {'MB/s':>8} {'vs orjson':>10} {'peak RSS':>10}")
    try:
        for size_mb in sizes:
            path = folder / f"chat-{size_mb}mb.jsonl"
            size = generate(path, size_mb)
            best = {mode: float("inf") for mode in MODES}
            peak = {mode: 0.0 for mode in MODES}
            for _ in range(args.repeat):  # modes interleaved, so a busy moment hits them alike
                for mode in MODES:
                    seconds, rss = run_once(mode, path)
                    best[mode] = min(best[mode], seconds)
                    peak[mode] = max(peak[mode], rss)
            for mode in MODES:
                seconds, rss = best[mode], peak[mode]
                ratio = best["orjson"] / seconds
                print(f"{size_mb:>4}MB {mode:<11} {size / MB / seconds:>8.0f} {ratio:>9.0%} {rss:>8.0f}MB")
                if mode in TARGETS and ratio < TARGETS[mode]:
                    missed.append(
                        f"{mode} at {size_mb} MB: {ratio:.0%} of orjson, target {TARGETS[mode]:.0%}"
                    )
                if mode.startswith("validate") and rss >= RSS_LIMIT_MB:
                    missed.append(
                        f"{mode} at {size_mb} MB: peak RSS {rss:.0f} MB, target < {RSS_LIMIT_MB} MB"
                    )
            if size_mb != min(sizes):
                path.unlink()
        smallest = folder / f"chat-{min(sizes)}mb.jsonl"
        seconds = end_to_end(smallest, max(args.repeat, 3))
        print(f"end to end: python -m tunekeeper.datasets on {min(sizes)} MB: {seconds:.3f} s "
              f"(interpreter start included)")
        if min(sizes) <= 10 and seconds >= END_TO_END_LIMIT_S:
            missed.append(f"end to end {seconds:.3f} s, target < {END_TO_END_LIMIT_S} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for line in missed:
        print(f"MISSED: {line}")
    print("all targets met" if not missed else f"{len(missed)} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
