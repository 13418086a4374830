"""A corpus of nasty inputs for ``validate`` and ``apply``: what an attacker or a careless user writes.

Used by ``tests/unit/test_bad_input_corpus.py`` (every case, in the default test run) and by
``python -m tests.reliability.bad_input`` (the figures). Each ``Case`` writes a small repository
(``write(root)``) and names the paths to give the command. Families:

- the hand-written files of ``tests/data/manifests/malformed/``;
- every field of a FineTuneJob, a Deployment and an Account set to each hostile value
  (wrong types, huge numbers, NaN, control characters, path escapes, URLs with credentials,
  remote http, a 100 KB string, ...);
- the filesystem: FIFOs, devices, links out of the repository, oversized and growing files,
  alias bombs per document, per file and per run;
- datasets: broken JSON, NUL bytes, wrong roles, no assistant turn, bad weights, not UTF-8,
  a FIFO or a folder where the file should be, a link to /dev/zero.

Nothing here sends a request; the runners check that nothing does.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MALFORMED = REPO / "tests" / "data" / "manifests" / "malformed"
GOOD_LINE = {
    "messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}]
}
GOOD_DATA = (json.dumps(GOOD_LINE) + "\n") * 12


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], list[Path]]  # builds the repository under root; returns the paths to name
    needs: str = ""  # "fifo" or "devzero" when the platform must have them
    tags: tuple[str, ...] = field(default=())


def _repo(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "train.jsonl").write_text(GOOD_DATA)
    (root / "data" / "valid.jsonl").write_text(GOOD_DATA)


JOB = {
    "apiVersion": "tunekeeper.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "bot"},
    "spec": {
        "baseModel": "gpt-4.1-2025-04-14",
        "trainingFile": "data/train.jsonl",
        "validationFile": "data/valid.jsonl",
        "suffix": "bot",
        "seed": 7,
        "method": {
            "type": "supervised",
            "hyperparameters": {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1.0},
        },
    },
}
DEPLOYMENT = {
    "apiVersion": "tunekeeper.io/v1alpha1",
    "kind": "Deployment",
    "metadata": {"name": "bot"},
    "spec": {"model": {"fromJob": "bot", "checkpoint": "final"}, "sku": {"name": "Standard", "capacity": 1}},
}
ACCOUNT = {
    "apiVersion": "tunekeeper.io/v1alpha1",
    "kind": "Account",
    "metadata": {"name": "prod"},
    "spec": {
        "endpoint": "https://contoso.openai.azure.com",
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "resourceGroup": "rg",
        "accountName": "contoso",
        "auth": {"apiKeyFromEnv": "TK_CORPUS_KEY"},
    },
}

# Values no field accepts (or that a careless hand writes); each is tried in every field below.
HOSTILE_VALUES: list[tuple[str, object]] = [
    ("null", None),
    ("empty-string", ""),
    ("list", [1, 2]),
    ("mapping", {"a": 1}),
    ("negative", -1),
    ("huge-int", 10**40),
    ("float-1e308", 1e308),
    ("nan-text", ".nan"),
    ("control-chars", "a\x07b\x1bc"),
    ("path-escape", "../../../etc/passwd"),
    ("url-credentials", "https://user:p4ss@example.com/x"),
    ("remote-http", "http://10.0.0.1/x"),
    ("long-string", "x" * 100_000),
    ("emoji", "🙂" * 50),
]

FIELDS: list[tuple[str, dict[str, object], tuple[str, ...]]] = [
    ("job", JOB, ("metadata", "name")),
    ("job", JOB, ("spec", "baseModel")),
    ("job", JOB, ("spec", "trainingFile")),
    ("job", JOB, ("spec", "validationFile")),
    ("job", JOB, ("spec", "suffix")),
    ("job", JOB, ("spec", "seed")),
    ("job", JOB, ("spec", "method", "type")),
    ("job", JOB, ("spec", "method", "hyperparameters", "n_epochs")),
    ("job", JOB, ("spec", "method", "hyperparameters", "learning_rate_multiplier")),
    ("deployment", DEPLOYMENT, ("spec", "model", "fromJob")),
    ("deployment", DEPLOYMENT, ("spec", "model", "checkpoint")),
    ("deployment", DEPLOYMENT, ("spec", "sku", "capacity")),
    ("account", ACCOUNT, ("spec", "endpoint")),
    ("account", ACCOUNT, ("spec", "subscriptionId")),
    ("account", ACCOUNT, ("spec", "auth", "apiKeyFromEnv")),
]


def _with(document: dict[str, object], path: tuple[str, ...], value: object) -> dict[str, object]:
    copy = json.loads(json.dumps(document))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return copy


def _yaml_value(value: object) -> str:
    if value == ".nan":
        return ".nan"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _manifest(*documents: dict[str, object], raw: dict[str, str] | None = None) -> str:
    """YAML text (JSON flow style is YAML) of the documents; ``raw`` swaps in literal YAML scalars."""
    text = "\n---\n".join(json.dumps(d, ensure_ascii=False) for d in documents) + "\n"
    for marker, literal in (raw or {}).items():
        text = text.replace(json.dumps(marker), literal)
    return text


def _field_case(
    kind: str, document: dict[str, object], path: tuple[str, ...], label: str, value: object
) -> Case:
    marker = "\u2063MARK\u2063"

    def write(root: Path) -> list[Path]:
        _repo(root)
        others = [d for d in (JOB, DEPLOYMENT) if d is not document]
        mutated = _with(document, path, marker)
        (root / "m.yaml").write_text(_manifest(mutated, *others, raw={marker: _yaml_value(value)}))
        return [root / "m.yaml"]

    return Case(f"field/{kind}.{'.'.join(path)}={label}", write, tags=("field",))


def _file_case(source: Path) -> Case:
    def write(root: Path) -> list[Path]:
        _repo(root)
        target = root / source.name
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copyfile(source, target)
        return [target]

    return Case(f"malformed/{source.name}", write, tags=("malformed",))


def _bomb(name: str, width: int = 30) -> str:
    a = "[" + ",".join(str(i) for i in range(width)) + "]"
    return (
        f"apiVersion: tunekeeper.io/v1alpha1\nkind: FineTuneJob\nmetadata: {{name: {name}}}\nspec:\n"
        f"  a: &a {a}\n  b: &b [{','.join(['*a'] * width)}]\n  c: &c [{','.join(['*b'] * width)}]\n"
        "  d: [*c, *c]\n"
    )


def _filesystem_cases() -> Iterator[Case]:
    def fifo(root: Path) -> list[Path]:
        _repo(root)
        os.mkfifo(root / "pipe.yaml")
        return [root]

    def fifo_named(root: Path) -> list[Path]:
        _repo(root)
        os.mkfifo(root / "pipe.yaml")
        return [root / "pipe.yaml"]

    def devzero(root: Path) -> list[Path]:
        _repo(root)
        (root / "zero.yaml").symlink_to("/dev/zero")
        return [root]

    def devzero_named(root: Path) -> list[Path]:
        _repo(root)
        (root / "zero.yaml").symlink_to("/dev/zero")
        return [root / "zero.yaml"]

    def link_out(root: Path) -> list[Path]:
        _repo(root)
        outside = root.parent / f"{root.name}-outside.yaml"
        outside.write_text(_manifest(_with(JOB, ("metadata", "name"), "OUTSIDE-SECRET")))
        (root / "out.yaml").symlink_to(outside)
        return [root]

    def dangling(root: Path) -> list[Path]:
        _repo(root)
        (root / "gone.yaml").symlink_to(root / "nowhere.yaml")
        return [root / "gone.yaml"]

    def big_in_folder(root: Path) -> list[Path]:
        _repo(root)
        with (root / "big.yaml").open("wb") as f:
            f.truncate(64 * 1024 * 1024)
        return [root]

    def big_named(root: Path) -> list[Path]:
        _repo(root)
        with (root / "big.yaml").open("wb") as f:
            f.truncate(3 * 1024**3)  # sparse: reading it would cost 3 GB
        return [root / "big.yaml"]

    def bomb_file(root: Path) -> list[Path]:
        _repo(root)
        (root / "bombs.yaml").write_text("---\n".join(_bomb(f"x{i}") for i in range(200)))
        return [root / "bombs.yaml"]

    def bomb_run(root: Path) -> list[Path]:
        _repo(root)
        for i in range(30):
            (root / f"b{i:02}.yaml").write_text(_bomb(f"y{i}"))
        return [root]

    def symlinked_folder(root: Path) -> list[Path]:
        _repo(root)
        elsewhere = root.parent / f"{root.name}-elsewhere"
        elsewhere.mkdir()
        (elsewhere / "x.yaml").write_text(_manifest(JOB))
        (root / "linked").symlink_to(elsewhere)
        return [root]

    def no_such(root: Path) -> list[Path]:
        _repo(root)
        return [root / "missing.yaml"]

    yield Case("fs/fifo-in-folder", fifo, needs="fifo")
    yield Case("fs/fifo-named", fifo_named, needs="fifo")
    yield Case("fs/link-to-dev-zero-in-folder", devzero, needs="devzero")
    yield Case("fs/link-to-dev-zero-named", devzero_named, needs="devzero")
    yield Case("fs/link-out-of-repo", link_out)
    yield Case("fs/dangling-link", dangling)
    yield Case("fs/64MB-file-in-folder", big_in_folder)
    yield Case("fs/3GB-file-named", big_named)
    yield Case("fs/alias-bombs-200-documents", bomb_file)
    yield Case("fs/alias-bombs-30-files", bomb_run)
    yield Case("fs/symlinked-folder", symlinked_folder)
    yield Case("fs/missing-path", no_such)


DATASET_LINES: list[tuple[str, bytes]] = [
    ("not-json", b"{this is not json}\n"),
    ("nul-bytes", b'{"messages": [{"role": "user", "content": "a\x00b"}]}\n'),
    ("no-assistant", json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode() + b"\n"),
    (
        "bad-role",
        json.dumps(
            {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]}
        ).encode()
        + b"\n",
    ),
    (
        "weight-2",
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "x", "weight": 2},
                ]
            }
        ).encode()
        + b"\n",
    ),
    ("not-utf8", b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}\n'),
    ("top-level-list", b"[1, 2, 3]\n"),
    ("empty-messages", b'{"messages": []}\n'),
    (
        "content-number",
        json.dumps(
            {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}
        ).encode()
        + b"\n",
    ),
    ("deep-json", b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"),
    ("huge-number", b'{"messages": [{"role": "user", "content": "a", "weight": 1e999999}]}\n'),
    ("empty-file", b""),
    ("only-newlines", b"\n\n\n\n"),
    ("bom-then-garbage", b"\xef\xbb\xbf\x00\x01\x02garbage\n"),
    (
        "tools-garbage",
        json.dumps(
            {
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": 5}}],
            }
        ).encode()
        + b"\n",
    ),
]


def _dataset_case(label: str, line: bytes) -> Case:
    def write(root: Path) -> list[Path]:
        _repo(root)
        (root / "data" / "train.jsonl").write_bytes(GOOD_DATA.encode() + line)
        (root / "m.yaml").write_text(_manifest(JOB, DEPLOYMENT))
        return [root / "m.yaml"]

    return Case(f"dataset/{label}", write, tags=("dataset",))


def _dataset_file_cases() -> Iterator[Case]:
    def fifo(root: Path) -> list[Path]:
        _repo(root)
        (root / "data" / "train.jsonl").unlink()
        os.mkfifo(root / "data" / "train.jsonl")
        (root / "m.yaml").write_text(_manifest(JOB))
        return [root / "m.yaml"]

    def folder(root: Path) -> list[Path]:
        _repo(root)
        (root / "data" / "train.jsonl").unlink()
        (root / "data" / "train.jsonl").mkdir()
        (root / "m.yaml").write_text(_manifest(JOB))
        return [root / "m.yaml"]

    def devzero(root: Path) -> list[Path]:
        _repo(root)
        (root / "data" / "train.jsonl").unlink()
        (root / "data" / "train.jsonl").symlink_to("/dev/zero")
        (root / "m.yaml").write_text(_manifest(JOB))
        return [root / "m.yaml"]

    yield Case("dataset-file/fifo", fifo, needs="fifo", tags=("dataset",))
    yield Case("dataset-file/folder", folder, tags=("dataset",))
    yield Case("dataset-file/link-to-dev-zero", devzero, needs="devzero", tags=("dataset",))


def cases() -> list[Case]:
    """Every case of the corpus, in a stable order."""
    found: list[Case] = []
    if MALFORMED.is_dir():
        found += [_file_case(p) for p in sorted(MALFORMED.iterdir())]
    found += [
        _field_case(kind, doc, path, label, value)
        for kind, doc, path in FIELDS
        for label, value in HOSTILE_VALUES
    ]
    found += list(_filesystem_cases())
    found += [_dataset_case(label, line) for label, line in DATASET_LINES]
    found += list(_dataset_file_cases())
    return found


def supported(case: Case) -> bool:
    if case.needs == "fifo":
        return hasattr(os, "mkfifo")
    if case.needs == "devzero":
        return Path("/dev/zero").exists()
    return True
