"""Load manifests: files and folders of YAML -> a checked :class:`~tunekeeper.resources.specs.Desired`.

Called by the CLI (``validate``, ``plan``, ``apply``) and the reconcile core. Reads every
``*.yaml`` / ``*.yml`` under the given paths (sorted), parses each document with positions,
validates it against its kind's JSON Schema, builds typed specs and runs the checks across
resources. Every problem becomes a diagnostic; :func:`load` raises one ``ManifestError`` with
all of them, sorted by file and line, or returns the specs and the warnings.

Folders may hold other YAML (CI configs, Helm charts): in a folder, only documents that are
tunekeeper resources (their apiVersion or kind says so) are read. A file named explicitly must
be a manifest.

Manifests follow the rules data paths follow: only regular files inside the repository root are
read (a symlink may point elsewhere inside it, never out of it); FIFOs, devices and sockets are
refused without blocking (opened non-blocking, checked with ``fstat``); the size is checked before
reading and the read itself is bounded. Every file skipped is reported with its path and the
reason: an error when it was named explicitly, a warning when it was found in a folder. Nothing
of a refused file is read, so no content from outside the repository can appear in a message.

Must not: read dataset contents (``tunekeeper.datasets`` does), touch the network, print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tunekeeper.diagnostics import Diagnostic, display_path
from tunekeeper.errors import ManifestError
from tunekeeper.localfiles import FileTooLarge, NotRegularFile, read_regular_file
from tunekeeper.resources._build import Origin, build
from tunekeeper.resources._checks import Built, check
from tunekeeper.resources._schema import KINDS, check_document
from tunekeeper.resources._yaml import MAX_FILE_BYTES, Document, ValueBudget, decode, parse_documents
from tunekeeper.resources.specs import (
    DEPRECATED_SPELLINGS,
    AccountSpec,
    DeploymentSpec,
    Desired,
    FineTuneJobSpec,
)

MANIFEST_SUFFIXES = (".yaml", ".yml")
SKIPPED_MANIFEST = "TK-L004"  # the code of "skipped: ..." (plan and apply refuse to go on without the file)
STACK_FILE = "tunekeeper.yaml"  # marks a stack root (resources/stack.py), read there
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".tunekeeper",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
    }
)
_OURS = re.compile(rb"tunekeeper\.io/")  # apiVersion: tunekeeper.io/..., block or flow style
_MAYBE_OURS = re.compile(rb"tunekeeper\.io/|\bkind\b")


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path  # absolute
    explicit: bool  # named by the user (strict) or found in a folder (only tunekeeper documents count)


def find_root(paths: Sequence[Path]) -> Path:
    """The repository root: the nearest ancestor (of the inputs' common folder) holding ``.git``,
    else that common folder."""
    folders = [(p if p.is_dir() else p.parent).absolute() for p in (paths or [Path.cwd()])]
    common = Path(os.path.commonpath([str(f) for f in folders]))
    for candidate in (common, *common.parents):
        if (candidate / ".git").exists():
            return candidate
    return common


def manifest_files(paths: Sequence[Path]) -> tuple[list[_Input], list[Diagnostic]]:
    """Expand folders (recursively, sorted); keep files as given. Missing paths are diagnostics."""
    found: list[_Input] = []
    problems: list[Diagnostic] = []
    for path in paths:
        absolute = path.absolute()
        if absolute.is_dir():
            found += (_Input(p, False) for p in _walk(absolute, problems))
        elif absolute.exists() or absolute.is_symlink():  # FIFOs, devices, dangling links: refused when read
            found.append(_Input(absolute, True))
        else:
            problems.append(
                Diagnostic(
                    str(path),
                    0,
                    0,
                    "error",
                    f"{path}: no such file or folder",
                    hint="check the path",
                    code="TK-L001",
                )
            )
    unique: dict[Path, _Input] = {}
    for item in found:
        if item.path not in unique or item.explicit:
            unique[item.path] = item
    return sorted(unique.values(), key=lambda i: str(i.path)), problems


def _walk(folder: Path, problems: list[Diagnostic]) -> Iterator[Path]:
    for current, dirs, files in os.walk(folder):  # never descends into symlinked folders
        kept = []
        for name in sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")):
            if (Path(current) / name).is_symlink():
                problems.append(
                    _skipped(
                        Path(current) / name,
                        "is a symlink to a folder, which is not followed",
                        "name the folder it points to, if it belongs to this repository",
                        explicit=False,
                    )
                )
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if name.endswith(MANIFEST_SUFFIXES) and name != STACK_FILE:  # the stack file is no manifest
                yield Path(current) / name


class Refused(Exception):
    """A manifest (or the stack file) that is not read, and why: ``reason`` and ``hint`` are sentences."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _skipped(path: Path, reason: str, hint: str, *, explicit: bool) -> Diagnostic:
    return Diagnostic(
        display_path(path),
        0,
        0,
        "error" if explicit else "warning",
        f"skipped: {reason}",
        hint=hint,
        code=SKIPPED_MANIFEST,
    )


def read_manifest(path: Path, root: Path) -> bytes:
    """The bytes of one manifest, read under the rules in the module docstring; ``Refused`` says why not.

    Read by ``localfiles.read_regular_file``: non-blocking (a FIFO without a writer cannot hang the
    read), checked through its open descriptor, bounded while reading.
    """
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise Refused(
            f"is a symlink to {real}, outside the repository root {root}",
            "copy the manifest into the repository; links out of it are not followed",
        )
    try:
        return read_regular_file(real, MAX_FILE_BYTES)
    except NotRegularFile as refused:
        raise Refused(refused.reason, "manifests are plain YAML files; remove it or rename it") from None
    except FileTooLarge as refused:
        raise Refused(_too_large(refused.reason), "is this really a manifest?") from None


def _too_large(what: str) -> str:
    return f"{what}; a manifest must be under {MAX_FILE_BYTES // (1024 * 1024)} MB"


def _is_ours(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    api_version = value.get("apiVersion")
    kind = value.get("kind")
    return (isinstance(kind, str) and kind in KINDS) or (
        isinstance(api_version, str) and api_version.startswith("tunekeeper")
    )


def load(
    paths: Sequence[Path], *, root: Path | None = None, check_data: bool = True
) -> tuple[Desired, tuple[Diagnostic, ...]]:
    """Read, validate and check manifests. Returns (desired specs, warnings); raises ManifestError
    with every diagnostic (errors and warnings, sorted) when anything is wrong.

    ``root`` bounds data paths (default :func:`find_root`); ``check_data=False`` skips checking
    that data files exist (containment is still checked).
    """
    desired, diagnostics = load_with_diagnostics(paths, root=root, check_data=check_data)
    if any(d.severity == "error" for d in diagnostics):
        raise ManifestError(diagnostics)
    return desired, diagnostics


def load_with_diagnostics(
    paths: Sequence[Path], *, root: Path | None = None, check_data: bool = True
) -> tuple[Desired, tuple[Diagnostic, ...]]:
    """Like :func:`load`, but never raises: returns the resources that could be built (those whose
    own document is valid) with every diagnostic, errors included. For reports that want to go on
    checking what is valid (``tunekeeper validate`` checks those resources' datasets)."""
    root = (root or find_root(paths)).absolute()
    inputs, diagnostics = manifest_files(paths)
    built: list[Built] = []
    files: list[str] = []
    budget = ValueBudget()  # alias expansion, across every file of this run
    for item in inputs:
        built += _load_file(item, root, check_data, diagnostics, files, budget)
    return _desired(root, built, files, diagnostics)


@dataclass(frozen=True, slots=True)
class TextSource:
    """A manifest that is no file on disk: a Kubernetes object rendered as YAML (the operator)."""

    text: str
    file: Path  # where it stands for its data paths: relative paths resolve from this file's folder
    display: str  # how messages name it; also the manifest label its deployments are tagged with


def load_texts(
    sources: Sequence[TextSource], *, root: Path, check_data: bool = True
) -> tuple[Desired, tuple[Diagnostic, ...]]:
    """Like :func:`load_with_diagnostics`, for manifests given as text. Never raises.

    Each source is read exactly as a file named explicitly would be; ``Desired.files`` lists the
    displays, so pruning is scoped to them (see ``markers.in_scope``).
    """
    root = root.absolute()
    diagnostics: list[Diagnostic] = []
    built: list[Built] = []
    files: list[str] = []
    budget = ValueBudget()
    for source in sources:
        item = _Input(source.file.absolute(), True)
        data = source.text.encode("utf-8")
        built += _load_bytes(item, data, source.display, root, check_data, diagnostics, [], budget)
        files.append(source.display)
    return _desired(root, built, files, diagnostics)


def _desired(
    root: Path, built: list[Built], files: list[str], diagnostics: list[Diagnostic]
) -> tuple[Desired, tuple[Diagnostic, ...]]:
    resolved, cross = check(built)
    diagnostics += cross
    desired = Desired(
        root=root,
        accounts=tuple(
            sorted((b.spec for b in resolved if isinstance(b.spec, AccountSpec)), key=lambda s: s.name)
        ),
        jobs=tuple(
            sorted((b.spec for b in resolved if isinstance(b.spec, FineTuneJobSpec)), key=lambda s: s.name)
        ),
        deployments=tuple(
            sorted((b.spec for b in resolved if isinstance(b.spec, DeploymentSpec)), key=lambda s: s.name)
        ),
        files=tuple(files),
    )
    return desired, tuple(sorted(diagnostics))


def _load_file(
    item: _Input,
    root: Path,
    check_data: bool,
    diagnostics: list[Diagnostic],
    files: list[str],
    budget: ValueBudget,
) -> list[Built]:
    display = display_path(item.path)
    try:
        data = read_manifest(item.path, root)
    except Refused as refused:
        diagnostics.append(_skipped(item.path, refused.reason, refused.hint, explicit=item.explicit))
        return []
    except OSError as exc:
        diagnostics.append(
            Diagnostic(
                display,
                0,
                0,
                "error",
                f"cannot read: {exc.strerror or exc}",
                hint="check that the file exists and is readable",
                code="TK-L002",
            )
        )
        return []
    return _load_bytes(item, data, display, root, check_data, diagnostics, files, budget)


def _load_bytes(
    item: _Input,
    data: bytes,
    display: str,
    root: Path,
    check_data: bool,
    diagnostics: list[Diagnostic],
    files: list[str],
    budget: ValueBudget,
) -> list[Built]:
    if not item.explicit and not _MAYBE_OURS.search(data):
        return []  # some other YAML in the folder (CI config, Helm chart, ...)
    text, problems = decode(data, display)
    if text is None:
        if item.explicit or _OURS.search(data):
            diagnostics += problems
        return []
    documents, problems = parse_documents(text, display, budget)
    if problems and (item.explicit or _OURS.search(data)):
        diagnostics += problems
    if not item.explicit:
        documents = [d for d in documents if _is_ours(d.value)]
    elif not documents and not problems:
        diagnostics.append(
            Diagnostic(
                display,
                0,
                0,
                "error",
                "no resources in this file (it is empty)",
                hint="add an Account, FineTuneJob or Deployment, or remove the file",
                code="TK-L003",
            )
        )
    if documents:
        files.append(_relative_to(item.path, root))
    result: list[Built] = []
    for document in documents:
        diagnostics += _respell(document, display)
        kind, problems = check_document(document, display)
        diagnostics += problems
        if kind is None or problems:
            continue
        assert isinstance(document.value, dict)
        origin = Origin(item.path, display, document)
        out: list[Diagnostic] = []
        spec = build(kind, document.value, origin, root, check_data, out)
        diagnostics += out
        result.append(Built(kind, spec, origin))
    return result


def _respell(document: Document, display: str) -> list[Diagnostic]:
    """Rewrite deprecated spellings (``DEPRECATED_SPELLINGS``) to ARM's, one warning each."""
    warnings: list[Diagnostic] = []
    value = document.value
    kind = value.get("kind") if isinstance(value, dict) else None
    for (for_kind, path, written), spelling in DEPRECATED_SPELLINGS.items():
        parent: object = value
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if kind != for_kind or not isinstance(parent, dict) or parent.get(path[-1]) != written:
            continue
        parent[path[-1]] = spelling
        pos = document.position(path)
        name = ".".join(path)
        warnings.append(
            Diagnostic(
                display,
                pos.line,
                pos.column,
                "warning",
                f"{name} {written} is deprecated: ARM names this {spelling}; read as {spelling}",
                hint=f"write {spelling}",
                field_path=name,
                code="TK-M120",
            )
        )
    return warnings


def _relative_to(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
