"""YAML to plain values, keeping the line and column of every node.

The loader (``resources/loader.py``) calls :func:`parse_documents` on each manifest file. It
gives ``yaml.safe_load`` semantics (the same tags, merge keys, YAML 1.1 scalars) but builds the
values from PyYAML's composed node tree, so a later problem at ``spec.method.type`` can point
at the exact line and column. It also refuses what ``safe_load`` lets through silently:
duplicate keys, non-string keys, alias "bombs" and deep nesting. Alias expansion is bounded three
ways: per document, per file and per run (a :class:`ValueBudget` the loader shares between every
file it reads), so neither one document, nor a file of hundreds of documents, nor a folder of
hundreds of files can expand a few kilobytes into gigabytes.

Must not: know about resource kinds or schemas, touch the network, or raise on bad input
(every problem becomes a :class:`~tunekeeper.diagnostics.Diagnostic`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml

from tunekeeper.diagnostics import Diagnostic

# A path to a node: keys and list indices from the document root.
NodePath = tuple[str | int, ...]

MAX_VALUES_PER_DOCUMENT = 100_000  # a manifest has hundreds; alias bombs have billions
MAX_VALUES_PER_FILE = 200_000  # a file of many documents still holds far fewer
MAX_VALUES_PER_RUN = 1_000_000  # ten thousand manifests in one run; a few hundred MB at most
MAX_DEPTH = 64
MAX_FILE_BYTES = 5 * 1024 * 1024

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(slots=True)
class Document:
    """One YAML document: its value, and where every value (and every mapping key) was written."""

    value: object
    start: Position
    values: dict[NodePath, Position] = field(default_factory=dict)
    keys: dict[NodePath, Position] = field(default_factory=dict)  # path includes the key itself
    texts: dict[NodePath, str] = field(default_factory=dict)  # scalars as written

    def position(self, path: NodePath, *, key: bool = False) -> Position:
        """Where ``path`` was written; the nearest written ancestor when it was not (a missing field)."""
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), self.start)


class ValueBudget:
    """How many more values (after alias expansion) may still be built; shared across files of one run."""

    def __init__(self, limit: int = MAX_VALUES_PER_RUN) -> None:
        self.limit = limit
        self.remaining = limit

    def spend(self, count: int) -> None:
        self.remaining = max(0, self.remaining - count)


class _TooBig(Exception):
    pass


class _Bad(Exception):
    def __init__(self, message: str, position: Position, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.hint = hint


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns one composed document into plain values with positions (SafeLoader scalar rules)."""

    def __init__(self, loader: yaml.SafeLoader, document: Document, budget: int) -> None:
        self._loader = loader
        self._doc = document
        self.allowed = budget
        self._budget = budget

    @property
    def spent(self) -> int:
        return self.allowed - max(self._budget, 0)

    def build(self, node: yaml.Node, path: NodePath, depth: int = 0) -> object:
        self._budget -= 1
        if self._budget < 0:
            raise _TooBig()
        if depth > MAX_DEPTH:
            raise _Bad(
                f"nesting is deeper than {MAX_DEPTH} levels",
                _pos(node),
                "a manifest is a few levels deep; check for a recursive alias",
            )
        self._doc.values.setdefault(path, _pos(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise _Bad(f"unsupported tag {node.tag}", _pos(node), "remove the tag")
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag not in ("tag:yaml.org,2002:map",):
                raise _Bad(f"unsupported tag {node.tag}", _pos(node), "remove the tag")
            return self._mapping(node, path, depth)
        raise _Bad(
            "unsupported YAML node", _pos(node), "use plain mappings, lists and values"
        )  # pragma: no cover - PyYAML has only these three

    def _scalar(self, node: yaml.ScalarNode, path: NodePath) -> object:
        self._doc.texts[path] = node.value
        if node.tag == _TIMESTAMP_TAG:
            # No field takes a date; "version: 2025-04-14" means the text.
            return node.value
        try:
            value = self._loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise _Bad(
                exc.problem or "cannot read this value",
                _pos(node),
                "only plain YAML values are allowed (no custom !tags)",
            ) from None
        except (ValueError, OverflowError) as exc:  # e.g. a malformed !!binary or !!float
            raise _Bad(
                f"cannot read this value: {exc}", _pos(node), "quote the value to keep it as text"
            ) from None
        if isinstance(value, datetime.date):
            return node.value
        return value

    def _mapping(self, node: yaml.MappingNode, path: NodePath, depth: int) -> dict[str, object]:
        result: dict[str, object] = {}
        merged: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node):
                    built = self.build(source, path, depth + 1)
                    assert isinstance(built, dict)
                    for k, v in built.items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Bad(
                    "a mapping key must be a plain string, not a list or mapping",
                    _pos(key_node),
                    "write keys as plain names, like `name: value`",
                )
            key = self._scalar(key_node, (*path, "\0key"))
            if not isinstance(key, str):
                raise _Bad(
                    f"mapping key {key_node.value!r} is read as {type(key).__name__}, not text",
                    _pos(key_node),
                    f'quote it: "{key_node.value}":',
                )
            if key in result:
                first = self._doc.keys[(*path, key)]
                raise _Bad(
                    f"duplicate key {key!r} (first defined at line {first.line})",
                    _pos(key_node),
                    "remove one of them; YAML would silently keep only the last",
                )
            self._doc.keys[(*path, key)] = _pos(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

    def _merge_sources(self, node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in node.value):
            return list(node.value)
        raise _Bad(
            "a merge key (<<) needs a mapping or a list of mappings",
            _pos(node),
            "write <<: *anchor, where the anchor names a mapping",
        )


def _line_of(text: str, index: int) -> Position:
    before = text[:index]
    line = before.count("\n") + 1
    return Position(line, index - (before.rfind("\n") + 1) + 1)


def decode(data: bytes, display: str) -> tuple[str | None, list[Diagnostic]]:
    """Bytes to text: UTF-8 (a BOM is fine), no NUL bytes, not absurdly large."""
    if len(data) > MAX_FILE_BYTES:
        return None, [
            Diagnostic(
                display,
                0,
                0,
                "error",
                f"file is {len(data)} bytes; a manifest must be under {MAX_FILE_BYTES // (1024 * 1024)} MB",
                hint="is this really a manifest?",
                code="TK-Y001",
            )
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        pos = _line_of(data[: exc.start].decode("utf-8", "replace"), exc.start)
        return None, [
            Diagnostic(
                display,
                pos.line,
                pos.column,
                "error",
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                hint="save the file as UTF-8",
                code="TK-Y002",
            )
        ]
    return text, []


def parse_documents(
    text: str, display: str, budget: ValueBudget | None = None
) -> tuple[list[Document], list[Diagnostic]]:
    """All documents of one YAML stream. Empty documents are skipped (``---`` separators are common).

    Stops at the first syntax error (YAML cannot recover), but keeps the documents before it.
    ``budget`` is the run's value budget (the loader passes one for all the files it reads); the
    values built here are taken from it.
    """
    documents: list[Document] = []
    loader = _Loader(text)
    run = budget if budget is not None else ValueBudget()
    try:
        for document in _compose(loader, run):
            documents.append(document)  # noqa: PERF402 - keeps the documents before a syntax error
    except _Bad as bad:
        return documents, [
            Diagnostic(
                display,
                bad.position.line,
                bad.position.column,
                "error",
                bad.message,
                hint=bad.hint,
                code="TK-Y010",
            )
        ]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = "invalid YAML: " + (exc.problem or "syntax error")
        if exc.context:
            message += f" ({exc.context}"
            if exc.context_mark and exc.context_mark is not mark:
                message += f" at line {exc.context_mark.line + 1}"
            message += ")"
        hint = "check the indentation and quoting around here"
        if mark and _tab_near(text, mark.line):
            hint = "YAML indents with spaces, never tabs: replace the tab with spaces"
        return documents, [Diagnostic(display, line, column, "error", message, hint=hint, code="TK-Y011")]
    except yaml.reader.ReaderError as exc:
        pos = _line_of(text, exc.position)
        return documents, [
            Diagnostic(
                display,
                pos.line,
                pos.column,
                "error",
                f"invalid character in YAML: {exc.reason}",
                hint="manifests are plain text; remove control characters",
                code="TK-Y012",
            )
        ]
    except yaml.YAMLError as exc:
        return documents, [
            Diagnostic(
                display,
                0,
                0,
                "error",
                f"invalid YAML: {exc}",
                hint="check the YAML syntax of this file",
                code="TK-Y013",
            )
        ]
    finally:
        loader.dispose()
    return documents, []


def _tab_near(text: str, line_index: int) -> bool:
    lines = text.splitlines()
    return any("\t" in lines[i] for i in range(max(0, line_index - 1), min(len(lines), line_index + 1)))


def _compose(loader: yaml.SafeLoader, run: ValueBudget) -> Iterator[Document]:
    file_left = MAX_VALUES_PER_FILE
    while loader.check_node():
        node = loader.get_node()
        if node is None:  # pragma: no cover - check_node said there is one
            break
        start = _pos(node)
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            continue  # an empty document ("---" then nothing, or only comments)
        document = Document(value=None, start=start)
        builder = _Builder(loader, document, min(MAX_VALUES_PER_DOCUMENT, file_left, run.remaining))
        try:
            document.value = builder.build(node, ())
        except _TooBig:
            raise _too_big(builder.allowed, file_left, run, start) from None
        except RecursionError:
            raise _Bad("document is nested too deeply", start, "a manifest is a few levels deep") from None
        finally:
            file_left -= builder.spent
            run.spend(builder.spent)
        yield document


def _too_big(allowed: int, file_left: int, run: ValueBudget, start: Position) -> _Bad:
    """Which of the three budgets ran out, said so the user knows where to look."""
    hint = "aliases (*name) expand here; a manifest needs far fewer values"
    if allowed == run.remaining and allowed < min(MAX_VALUES_PER_DOCUMENT, file_left):
        return _Bad(
            f"the manifests of this run expand to more than {run.limit} values in total (alias "
            "expansion included); stopped here",
            start,
            hint,
        )
    if allowed == file_left and allowed < MAX_VALUES_PER_DOCUMENT:
        return _Bad(
            f"this file expands to more than {MAX_VALUES_PER_FILE} values (alias expansion included)",
            start,
            hint,
        )
    return _Bad(f"document expands to more than {MAX_VALUES_PER_DOCUMENT} values", start, hint)
