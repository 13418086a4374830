"""Benchmark: ``tunekeeper validate FILE`` end to end against a raw per-line orjson loop.

In one run, for each size (default 10, 200 and 500 MB) it generates realistic, harder training
data: multi-turn chats with ``weight``, text in many scripts (Latin with accents, Cyrillic,
Greek, Arabic, Hebrew, Devanagari, Thai, Chinese, Japanese, Korean, emoji), a third of the lines
written with ``\\u`` escapes instead of raw UTF-8, code blocks, long system prompts, and a few
tool calls and images. Then it times whole processes, as a user runs them (interpreter start,
imports and exit included), each in a fresh wrapper so that peak RSS is that command's own
(the largest of the process and its children):

- ``orjson``       the floor: ``python -c "for line in file: orjson.loads(line)"`` (1 MiB buffer)
- ``validate -w1`` ``tunekeeper validate FILE --workers 1``: every check, one process
- ``validate``     ``tunekeeper validate FILE``: the default, which picks its worker count from the
                   file size and the cores

and prints MB/s, the ratio to the orjson loop (its time divided by ours), and peak RSS. Times are
the best of ``--repeat`` runs, the commands interleaved so a busy moment hits them alike.
Targets: ``validate -w1`` >= 80% of orjson, ``validate`` >= 110% on 2 cores or more, peak RSS
< 100 MB, and the 10 MB file in < 0.2 s end to end. Exit code 1 when a target is missed. It
also prints the start-up of ``tunekeeper --version`` and of ``validate`` on a 12-line file, and
that of the orjson loop itself (``import orjson``), against which the 10 MB ratios are mostly a
comparison of start-ups. tunekeeper's modules are byte-compiled first, as pip does on install.

Usage: python bench/datasets_throughput.py [--sizes 10,200,500] [--repeat 5] [--dir DIR]
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
from pathlib import Path

import orjson

MB = 1024 * 1024
TARGETS = {"validate -w1": 0.8, "validate": 1.1}
RSS_LIMIT_MB = 100
END_TO_END_LIMIT_S = 0.2

# Runs one command and reports its wall time and the peak RSS of it and its children (the
# wrapper is a fresh process, so RUSAGE_CHILDREN holds only that command's processes).
WRAPPER = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
elapsed = time.perf_counter() - start
if done.returncode not in (0,):
    sys.exit(done.stderr.decode()[-2000:] or f"exit {done.returncode}")
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_mb": peak_kb / 1024}))
"""
ORJSON_LOOP = (
    "import orjson, sys\n"
    "with open(sys.argv[1], 'rb', buffering=1 << 20) as source:\n"
    "    for line in source:\n"
    "        orjson.loads(line)\n"
)

SCRIPTS = [
    "The quick brown fox jumps over the lazy dog while the support ticket waits for a refund.",
    "Café, naïve, façade, jalapeño, smörgåsbord, Ærøskøbing, Łódź, Dvořák, Ålesund and Škoda.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю: заказ отправлен вчера.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία· η παραγγελία σας έχει σταλεί.",
    "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق.",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה; ההזמנה שלך נשלחה.",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "我能吞下玻璃而不伤身体。您的订单已经发货，预计明天送达。",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。ご注文は発送されました。",
    "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다. 주문이 발송되었습니다.",
    "Thanks! 🙂👍 Your order 📦 ships today 🚚 — see you soon 🎉.",
]
SYSTEM_PROMPTS = [
    "You are Clippy, a helpful and slightly sarcastic support assistant. " * 12,
    ("You answer customer questions about orders, invoices and refunds. Always be polite, never invent "
     "order numbers, and ask for the order id when it is missing. Answer in the customer's language. ") * 8,
    "Tu es un assistant de support. Réponds brièvement, en français, avec des exemples précis. " * 10,
]
CODE = (
    "Here is how to do it:\n\n```python\nimport json\n\n\ndef load(path: str) -> list[dict]:\n"
    "    \"\"\"Read one JSON object per line.\"\"\"\n    with open(path, encoding=\"utf-8\") as f:\n"
    "        return [json.loads(line) for line in f if line.strip()]\n```\n\n"
    "Then call `load(\"data.jsonl\")`."
)


def text(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(SCRIPTS) for _ in range(sentences))


def example(rng: random.Random, index: int) -> dict[str, object]:
    messages: list[dict[str, object]] = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
    for turn in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": f"[{index}.{turn}] " + text(rng, rng.randint(1, 6))})
        reply = CODE if rng.random() < 0.15 else text(rng, rng.randint(2, 10))
        answer: dict[str, object] = {"role": "assistant", "content": reply}
        if rng.random() < 0.4:
            answer["weight"] = rng.choice((0, 1))
        messages.append(answer)
    messages[-1].pop("weight", None)  # the last answer is always trained on
    record: dict[str, object] = {"messages": messages}
    extra = rng.random()
    if extra < 0.01:
        record["tools"] = [{"type": "function", "function": {
            "name": "lookup_order", "description": "Find an order by id",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}}}}]
        messages.insert(2, {"role": "assistant", "tool_calls": [{
            "id": f"call_{index}", "type": "function",
            "function": {"name": "lookup_order", "arguments": json.dumps({"id": index})}}]})
        messages.insert(3, {"role": "tool", "tool_call_id": f"call_{index}", "content": "shipped"})
    elif extra < 0.02:
        messages[1]["content"] = [
            {"type": "text", "text": text(rng, 2)},
            {"type": "image_url", "image_url": {"url": f"https://example.com/receipt-{index}.png",
                                                "detail": rng.choice(("low", "high", "auto"))}},
        ]
    return record


def generate(path: Path, size_mb: int) -> int:
    """Write a valid dataset of about ``size_mb`` MB; returns its size in bytes."""
    rng = random.Random(size_mb)
    target = size_mb * MB
    written = 0
    index = 0
    with open(path, "wb") as sink:  # no BOM, so the orjson loop parses line 1 too (ours warns about it)
        batch: list[bytes] = []
        while written < target:
            record = example(rng, index)
            # A third of the lines as json.dumps writes them (\u escapes), the rest as raw UTF-8.
            line = json.dumps(record).encode() if index % 3 == 0 else orjson.dumps(record)
            batch.append(line + b"\n")
            written += len(line) + 1
            index += 1
            if len(batch) >= 2000:
                sink.write(b"".join(batch))
                batch = []
        sink.write(b"".join(batch))
    return written


def tunekeeper() -> list[str]:
    script = Path(sys.executable).with_name("tunekeeper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tunekeeper"]


def commands(path: Path) -> dict[str, list[str]]:
    return {
        "orjson": [sys.executable, "-c", ORJSON_LOOP, str(path)],
        "validate -w1": [*tunekeeper(), "validate", str(path), "--workers", "1"],
        "validate": [*tunekeeper(), "validate", str(path)],
    }


def byte_compile() -> None:
    """Byte-compile tunekeeper's modules (into their ``__pycache__``), as pip does when it installs a
    package. A checkout installed editable (``make setup``) otherwise compiles them again on every
    start when PYTHONDONTWRITEBYTECODE is set: about 60 ms a run that no installed copy pays."""
    import tunekeeper

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(tunekeeper.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)


def run_once(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one command, as a whole process."""
    result = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures["seconds"], figures["rss_mb"]


def best_of(command: list[str], repeat: int) -> tuple[float, float]:
    runs = [run_once(command) for _ in range(repeat)]
    return min(s for s, _ in runs), max(r for _, r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,200,500", help="comma-separated sizes in MB")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best time is kept)")
    parser.add_argument(
        "--dir", default=None, help="where to put the generated files (a temporary folder inside)"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    cores = os.cpu_count() or 1

    folder = Path(tempfile.mkdtemp(prefix="tk-bench-", dir=args.dir))
    byte_compile()
    missed: list[str] = []
    print(f"python {sys.version.split()[0]}, {cores} CPUs, best of {args.repeat}, whole processes, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every mode)")
    print(f"{'size':>6} {'command':<13} {'seconds':>8} {'MB/s':>7} {'vs orjson':>10} {'peak RSS':>9}")
    try:
        small = folder / "small.jsonl"
        small.write_bytes(b"".join(orjson.dumps(example(random.Random(i), i)) + b"\n" for i in range(12)))
        for size_mb in sizes:
            path = folder / f"chat-{size_mb}mb.jsonl"
            size = generate(path, size_mb)
            best = {name: float("inf") for name in commands(path)}
            peak = {name: 0.0 for name in commands(path)}
            for _ in range(args.repeat):  # interleaved, so a busy moment hits them alike
                for name, command in commands(path).items():
                    seconds, rss = run_once(command)
                    best[name] = min(best[name], seconds)
                    peak[name] = max(peak[name], rss)
            for name in commands(path):
                seconds, rss = best[name], peak[name]
                ratio = best["orjson"] / seconds
                print(f"{size_mb:>4}MB {name:<13} {seconds:>8.3f} {size / MB / seconds:>7.0f} {ratio:>9.0%} "
                      f"{rss:>7.0f}MB")
                target = TARGETS.get(name)
                if target is not None and (name != "validate" or cores >= 2) and ratio < target:
                    missed.append(f"{name} at {size_mb} MB: {ratio:.0%} of orjson, target {target:.0%}")
                if name.startswith("validate") and rss >= RSS_LIMIT_MB:
                    missed.append(f"{name} at {size_mb} MB: peak RSS {rss:.0f} MB, "
                                  f"target < {RSS_LIMIT_MB} MB")
                if name == "validate" and size_mb <= 10 and seconds >= END_TO_END_LIMIT_S:
                    missed.append(f"validate of {size_mb} MB: {seconds:.3f} s, "
                                  f"target < {END_TO_END_LIMIT_S} s")
            path.unlink()
        version, _ = best_of([*tunekeeper(), "--version"], max(args.repeat, 5))
        tiny, _ = best_of([*tunekeeper(), "validate", str(small)], max(args.repeat, 5))
        bare, _ = best_of([sys.executable, "-c", "pass"], max(args.repeat, 5))
        parser, _ = best_of([sys.executable, "-c", "import orjson"], max(args.repeat, 5))
        print(f"start-up: tunekeeper --version {version:.3f} s, validate of a 12-line file {tiny:.3f} s "
              f"(python -c pass: {bare:.3f} s; the orjson loop's own start, import orjson: {parser:.3f} s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for line in missed:
        print(f"MISSED: {line}")
    print("all targets met" if not missed else f"{len(missed)} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
