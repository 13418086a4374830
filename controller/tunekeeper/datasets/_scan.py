"""The streaming scanner behind ``validate_dataset`` and ``validate_bytes``.

A file is read line by line through a 1 MiB buffer; each line is parsed once with orjson and
checked by ``_examples`` (a short loop for the common plain example, the full check for the
rest). Per line that holds a JSON object only a 60-bit hash is kept (xxh3 shifted so that each
value is a small Python int), so memory does not grow with the size of the examples: 8 bytes per
such line while scanning (other lines cost nothing: a run of them is one entry in ``gaps``), then,
to find repeated lines, a set of the hashes (up to 200,000 lines, about 60 bytes each) or a sorted
numpy copy (8 bytes each). Of each rule at most ``MAX_PER_RULE`` diagnostics are listed per file
and the rest counted in one summary line, so a file of millions of bad lines costs bounded memory
and output too.

With ``workers`` > 1 the file is cut at line boundaries into pieces of some megabytes, which this
process and forked children take from a shared queue (see ``scan_file``). Each piece reports line
numbers relative to its start, and the merge here shifts them and finds duplicates across pieces,
so the result is identical to a one-process scan.

Decisions where the service's documentation is silent:

- A blank line (empty or whitespace only), anywhere in the file, is a warning: it holds no
  example and JSONL readers skip it; a newline at the very end of the file is not a blank line.
- ``examples`` counts every non-blank line, valid or not; the minimum and recommended counts
  (10 and 50) compare against it, and the errors of bad lines are reported on their own.
- A file of 512 MB or more is reported and not scanned further.
- A line of more than ``MAX_LINE_BYTES`` (32 MiB) is reported (TK-D017) and skipped without
  being held in memory, so memory stays bounded whatever one line holds. A 32 MiB example is
  far over every model's context unless it is almost all inline images; those belong at a URL.
- An example whose count passes the context is reported with a lower bound ("at least N
  tokens", TK-D016), never counted in full: its text lengths may prove it over the context
  without the tokenizer, and counting otherwise stops at the context (see ``_tokens``).
- Duplicates compare the raw bytes of lines (by their hashes); the later line names the first.

This module must not print, and never raises for bad data: everything is a Diagnostic.
"""

from __future__ import annotations

import gc
import io
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import orjson
import xxhash

from tunekeeper.datasets._examples import CHAT_EXAMPLE, check_example, plain_figures
from tunekeeper.datasets._findings import Findings, listed
from tunekeeper.datasets._report import DatasetReport, DatasetStats, auto_epochs
from tunekeeper.datasets._rules import diagnose, kind_of
from tunekeeper.diagnostics import Diagnostic

MAX_FILE_BYTES = 512 * 1024 * 1024
MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 50
CHUNK = 1 << 20
COUNT_UP_TO = 4  # an example's tokens are counted up to this many times the context, then a lower bound
MAX_LINE_BYTES = 32 << 20  # longer lines are reported and skipped in blocks, never held (see below)
NUMPY_ABOVE = 200_000  # lines; see repeated_hashes
BOM = b"\xef\xbb\xbf"
@dataclass(frozen=True, slots=True)
class Settings:
    """What every range needs to know; sent to worker processes, so plain values only."""

    label: str  # path as shown in diagnostics
    method: str
    limit: int  # context tokens of the model
    model: str  # the model as named in messages
    exact_tokens: bool


@dataclass(slots=True)
class Part:
    """What one byte range found. Line numbers in ``diagnostics`` and ``signatures`` are local."""

    lines: int = 0
    examples: int = 0
    turns: int = 0
    tokens: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)  # up to MAX_PER_RULE of each rule
    counts: dict[str, int] = field(default_factory=dict)  # rule -> diagnostics found, listed or not
    hashes: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]  # per object line
    # (index in hashes, lines before that one that hold no object), where that number changes
    gaps: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]
    signatures: dict[tuple[str, ...], array] = field(default_factory=dict)  # type: ignore[type-arg]
    has_bom: bool = False


class _Range:
    """The scan of one byte range: the hot loop for plain lines, the full check for the rest."""

    __slots__ = ("counter", "findings", "part", "settings", "signatures")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.part = Part()
        self.findings = Findings()
        self.counter: Any = None
        self.signatures = self.part.signatures

    def run(self, source: BinaryIO, start: int, end: int) -> Part:
        # Parsed lines hold no reference cycles and die by reference counting as soon as they are
        # checked, so the cyclic collector has nothing to find here; left on, it would walk every
        # tracked object of the process again and again while the parser allocates.
        collecting = gc.isenabled()
        gc.disable()
        try:
            part = self._run(source, start, end)
        finally:
            if collecting:
                gc.enable()
        part.diagnostics = list(self.findings)
        part.counts = self.findings.counts
        return part

    def _run(self, source: BinaryIO, start: int, end: int) -> Part:
        part = self.part
        settings = self.settings
        limit = settings.limit
        exact = settings.exact_tokens
        plain = plain_figures if settings.method == "supervised" and not exact else _not_plain
        full = self.full
        loads = orjson.loads
        bad_json = orjson.JSONDecodeError
        digest = xxhash.xxh3_64_intdigest
        hashes = part.hashes
        remember = hashes.append
        gaps = part.gaps
        source.seek(start)
        if start == 0 and source.read(3) == BOM:
            part.has_bom = True
            start = 3
        source.seek(start)
        remaining = end - start
        line_no = examples = turns = tokens = 0
        skipped = recorded = 0  # lines with no object so far; that number as gaps last recorded it
        line: bytes | bytearray = b""
        readline = source.readline
        while remaining > 0:
            line = readline(CHUNK)
            if not line:
                break
            line_no += 1
            if len(line) == CHUNK and line[-1] != 10:  # a line over 1 MiB: gather it, or skip it
                gathered = self.long_line(source, line, line_no)
                if isinstance(gathered, int):
                    remaining -= gathered
                    skipped += 1
                    continue
                line = gathered
            elif line == b"\n":  # a blank line, and perhaps many: counted in bulk, never parsed
                run = 1 + self.blank_run(source, remaining - 1)
                self.blank_lines(line_no, run)
                line_no += run - 1
                skipped += run
                remaining -= run
                continue
            try:
                obj = loads(line)
            except bad_json:
                obj = _UNPARSED
            figures = plain(obj, len(line))
            if figures is not None:
                examples += 1
                if skipped != recorded:
                    gaps.extend((len(hashes), skipped))
                    recorded = skipped
                remember(digest(line) >> 4)
                line_turns, estimate, bound = figures
                turns += line_turns
                tokens += estimate if bound <= limit else self.count(obj, line_no)
            else:
                checked = full(line, line_no, obj)
                if checked is not None:
                    examples += 1
                    turns += checked[1]
                    tokens += checked[2]
                if checked is None or not checked[0]:
                    skipped += 1
                else:
                    if skipped != recorded:
                        gaps.extend((len(hashes), skipped))
                        recorded = skipped
                    remember(digest(line) >> 4)
            remaining -= len(line)
        if line and not line.endswith(b"\n") and hashes and skipped == recorded:  # the last line: an object
            hashes[-1] = digest(line + b"\n") >> 4  # hashed as if a line ended it, to match its twin
        part.lines = line_no
        part.examples = examples
        part.turns = turns
        part.tokens = tokens
        return part

    @staticmethod
    def blank_run(source: BinaryIO, limit: int) -> int:
        """Read the newlines that come next, up to ``limit`` bytes: the blank lines that follow one.

        Small reads first (one blank line alone costs a 64-byte look), growing while the run goes on;
        what was read past the run is given back with a seek."""
        count = 0
        block = 64
        while count < limit:
            ahead = source.read(min(block, limit - count))
            if not ahead:
                break
            newlines = len(ahead) - len(ahead.lstrip(b"\n"))
            count += newlines
            if newlines < len(ahead):
                source.seek(newlines - len(ahead), io.SEEK_CUR)
                break
            block = min(block * 8, 1 << 16)
        return count

    def blank_lines(self, first: int, count: int) -> None:
        """Report ``count`` blank lines from line ``first`` on (TK-D013): the listed ones are built."""
        findings = self.findings
        for offset in range(count):
            if findings.listed_in_full("TK-D013"):  # the rest are counted, not built one by one
                findings.counts["TK-D013"] += count - offset
                return
            findings.add("TK-D013", self.settings.label, first + offset)

    def long_line(self, source: BinaryIO, start: bytes, line_no: int) -> bytearray | int:
        """The rest of a line longer than ``CHUNK``, gathered in place (no copy: the parsers read a
        bytearray as they read bytes); or, past ``MAX_LINE_BYTES``, its length in bytes: the line is
        then reported and skipped in blocks, keeping none of it."""
        line = bytearray(start)
        while len(line) <= MAX_LINE_BYTES:
            block = source.readline(CHUNK)
            line += block
            if not block or block.endswith(b"\n"):
                return line
        size = len(line)
        del line
        while True:
            block = source.readline(CHUNK)
            size += len(block)
            if not block or block.endswith(b"\n"):
                break
        self.findings.append(diagnose("TK-D017", self.settings.label, line_no, size=size,
                                      limit=MAX_LINE_BYTES))
        return size

    def full(self, line: bytes | bytearray, line_no: int, obj: object) -> tuple[bool, int, int] | None:
        """Check a line that is not plainly valid (``obj``: the line parsed, or ``_UNPARSED``):
        (is an object, turns, tokens), or None if blank."""
        settings = self.settings
        out = self.findings
        label = settings.label
        if obj is _UNPARSED:
            if not line.strip():
                out.add("TK-D013", label, line_no)
                return None
            if not (out.listed_in_full("TK-D010") and out.listed_in_full("TK-D011")):
                out.append(_parse_problem(line, label, line_no))
            else:  # both listed in full already: only count this one, by the rule _parse_problem picks
                out.wants("TK-D011" if _is_utf8(line) else "TK-D010")
            return False, 0, 0
        if type(obj) is not dict:
            out.add("TK-D012", label, line_no, kind=kind_of(obj), example=CHAT_EXAMPLE)
            return False, 0, 0
        figures, _errors = check_example(settings.method, obj, len(line), label, line_no, out)
        turns, estimate, bound, signature = figures
        if signature is not None:
            if signature not in self.signatures:
                self.signatures[signature] = array("Q")
            self.signatures[signature].append(line_no)
        if settings.exact_tokens or bound > settings.limit:
            return True, turns, self.count(obj, line_no)
        return True, turns, estimate

    def count(self, obj: dict[str, Any], line_no: int) -> int:
        """Tokens of one example, exact unless it is over the context; reports it when it is.

        An example whose text lengths alone prove it over the context is not tokenized at all, and
        counting any other stops once the count passes ``COUNT_UP_TO`` times the context (see
        ``_tokens``): one huge line costs bounded time. Such an example's figure is a lower bound;
        one a little over the context gets its exact count, which says how much to cut.
        """
        if self.counter is None:
            from tunekeeper.datasets._tokens import TokenCounter

            self.counter = TokenCounter()
        settings = self.settings
        floor = self.counter.floor(settings.method, obj)
        if floor > settings.limit:
            counted = needed = floor
            exact = False
        else:
            ceiling = COUNT_UP_TO * settings.limit
            counted, needed = self.counter.example(settings.method, obj, ceiling=ceiling)
            exact = not self.counter.stopped
        if needed > settings.limit:
            self.findings.append(diagnose("TK-D015" if exact else "TK-D016", settings.label, line_no,
                                          tokens=needed, limit=settings.limit, model=settings.model))
        return int(counted)


def _not_plain(obj: object, size: int) -> None:
    """The fast path of methods that have none: every line gets the full check."""
    return


_UNPARSED = object()  # a line that is not JSON: the full check says why


def scan_range(source: BinaryIO, start: int, end: int, settings: Settings) -> Part:
    """Check every line of source[start:end]; ``start`` is 0 or just after a newline."""
    return _Range(settings).run(source, start, end)


def _is_utf8(line: bytes | bytearray) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_problem(line: bytes | bytearray, label: str, line_no: int) -> Diagnostic:
    line = line.rstrip(b"\r\n")  # so the column orjson reports is on this line
    reason, column = "line break inside the JSON value", 0  # parses once the line ending is gone
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as error:
        reason, column = error.msg, error.colno
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return diagnose("TK-D010", label, line_no, column=bad.start + 1, byte=bad.start + 1,
                        value=f"0x{line[bad.start]:02x}")
    if reason.startswith("UTF-8 byte order mark"):
        reason = "a byte order mark (BOM) may only start the file"
    return diagnose("TK-D011", label, line_no, column=column, reason=reason)


def split_ranges(source: BinaryIO, size: int, parts: int) -> list[tuple[int, int]]:
    """Cut [0, size) into up to ``parts`` ranges, each starting at the beginning of a line."""
    starts = [0]
    for index in range(1, parts):
        boundary = _next_line_start(source, max(size * index // parts, starts[-1]))
        if starts[-1] < boundary < size:
            starts.append(boundary)
    ends = starts[1:] + [size]
    return list(zip(starts, ends))


def _next_line_start(source: BinaryIO, offset: int) -> int:
    """The offset just after the first newline at or after ``offset`` (or the end of the file).

    Read in small blocks rather than with readline, so a giant line costs no memory here.
    """
    source.seek(offset)
    while True:
        block = source.read(1 << 16)
        if not block:
            return offset
        found = block.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(block)


def _scan_file_range(path: str, start: int, end: int, settings: Settings) -> Part:
    with open(path, "rb", buffering=CHUNK) as source:
        return scan_range(source, start, end, settings)


def scan_file(path: str, size: int, settings: Settings, workers: int,
              meanwhile: Callable[[], object] | None = None) -> list[Part]:
    """Scan a file in ``workers`` processes (this one included); parts in file order.

    With more than one worker, the file is cut at line boundaries into pieces of about
    ``PIECE_BYTES`` (at least one per worker), and the processes take pieces one at a time from a
    shared queue until none is left: a pipe holding each piece's number, written before the
    workers start, from which every read takes one number. So a process slowed down by the rest of
    the machine, or busy with something else, simply takes fewer pieces. ``meanwhile`` is that
    something else: work of this process (the caller's, such as loading what renders the report)
    done while the forked workers already scan, before it joins them.

    Workers are forked (forking costs a millisecond; a process pool costs more than scanning a
    10 MB file); each sends its parts back through a pipe. A worker that fails to deliver is not
    trusted: the pieces it took are scanned here instead, so the result never depends on a child.
    Without fork, or with one worker, everything is scanned here and ``meanwhile`` is not called.
    """
    # however many are asked for: no more processes than MB in the file, nor than MAX_WORKERS
    workers = max(1, min(workers, MAX_WORKERS, size // MIN_PIECE_BYTES))
    with open(path, "rb", buffering=CHUNK) as source:
        pieces = min(MAX_PIECES, max(workers, -(-size // PIECE_BYTES)))
        ranges = split_ranges(source, size, pieces) if workers > 1 and size > 0 else [(0, size)]
        if len(ranges) == 1 or not hasattr(os, "fork"):
            return [scan_range(source, start, end, settings) for start, end in ranges]
    if settings.exact_tokens:
        from tunekeeper.datasets._tokens import o200k_base

        o200k_base()  # load once here; the children inherit it instead of each loading their own
    queue_read, queue_write = os.pipe()
    try:
        numbers = memoryview(b"".join(index.to_bytes(_NUMBER, "little") for index in range(len(ranges))))
        while numbers:
            numbers = numbers[os.write(queue_write, numbers):]
    finally:
        os.close(queue_write)  # so a read of the empty queue answers "nothing left" at once
    children: list[tuple[int, int]] = []
    try:
        children = [_fork_worker(path, ranges, settings, queue_read)
                    for _ in range(min(workers, len(ranges)) - 1)]
        if meanwhile is not None:
            meanwhile()
        found = _take_pieces(path, ranges, settings, queue_read)
    except BaseException:
        for child in children:
            _collect(child)  # reap them before giving up
        raise
    finally:
        os.close(queue_read)
    for child in children:
        found.update(_collect(child) or {})
    return [found[index] if index in found else _scan_file_range(path, *ranges[index], settings)
            for index in range(len(ranges))]


PIECE_BYTES = 8 << 20  # the unit of work a process takes from the queue: 20 ms or so of scanning
MIN_PIECE_BYTES = 1 << 20  # a process for less costs more than it saves
MAX_WORKERS = 64
MAX_PIECES = 4096  # numbers in the queue: 16 KiB, well within what a pipe holds without a reader
_NUMBER = 4  # bytes per piece number; a pipe read of so few bytes is never split between readers


def _take_pieces(path: str, ranges: list[tuple[int, int]], settings: Settings, queue: int) -> dict[int, Part]:
    """Scan pieces taken from the queue until it is empty; their parts by piece number."""
    found: dict[int, Part] = {}
    while True:
        number = os.read(queue, _NUMBER)
        if len(number) < _NUMBER:
            return found
        index = int.from_bytes(number, "little")
        found[index] = _scan_file_range(path, *ranges[index], settings)


def _fork_worker(path: str, ranges: list[tuple[int, int]], settings: Settings, queue: int) -> tuple[int, int]:
    """Start a child that takes pieces from the queue; returns (pid, read end of its pipe)."""
    import pickle  # here, not at start-up: only parallel scans send parts through a pipe

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: scan, send, and leave without running anything of the parent's
        status = 1
        try:
            os.close(read_end)
            found = _take_pieces(path, ranges, settings, queue)
            with os.fdopen(write_end, "wb") as pipe:  # streamed: no copy of the parts in memory
                pickle.dump(found, pipe, protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _collect(child: tuple[int, int]) -> dict[int, Part] | None:
    """The parts a forked child sent, by piece number, or None when it sent nothing usable."""
    import pickle

    pid, read_end = child
    with os.fdopen(read_end, "rb") as pipe:
        try:
            found = pickle.load(pipe)  # streamed from the pipe: no copy of the parts in memory
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError):
            found = None  # nothing, or a truncated stream: its pieces are scanned again here
        while pipe.read(1 << 16):  # drain what is left, so that the child is never stuck writing
            pass
    _, status = os.waitpid(pid, 0)
    if status != 0 or not isinstance(found, dict):
        return None
    if not all(isinstance(part, Part) for part in found.values()):
        return None
    return found


def merge(parts: list[Part], settings: Settings, size: int, epochs: int | None) -> DatasetReport:
    """Join the parts of one file: shift line numbers, find duplicates, apply file-level rules."""
    label = settings.label
    found: list[Diagnostic] = []
    counts: dict[str, int] = {}  # rule -> diagnostics found in the whole file, listed or not
    base = 0
    for part in parts:
        if base:
            found.extend(replace(d, line=d.line + base) for d in part.diagnostics)
        else:
            found.extend(part.diagnostics)
        for code, count in part.counts.items():
            counts[code] = counts.get(code, 0) + count
        base += part.lines
    later = Findings()  # the file-wide line rules, counted and capped as they are found
    _duplicates(parts, label, later)
    if settings.method == "reinforcement":
        _inconsistent_references(parts, label, later)
    found.extend(later)
    for code, count in later.counts.items():
        counts[code] = counts.get(code, 0) + count
    diagnostics = listed(found, counts, label)

    lines = sum(part.lines for part in parts)
    examples = sum(part.examples for part in parts)
    has_bom = bool(parts) and parts[0].has_bom
    diagnostics.extend(file_rules(label, size=size, examples=examples, has_bom=has_bom))
    tokens = sum(part.tokens for part in parts)
    chosen = epochs if epochs is not None else auto_epochs(examples)
    stats = DatasetStats(
        bytes=size,
        lines=lines,
        examples=examples,
        assistant_turns=sum(part.turns for part in parts),
        tokens=tokens,
        tokens_exact=settings.exact_tokens,
        epochs=chosen,
        billed_tokens=tokens * chosen,
    )
    return DatasetReport(path=label, diagnostics=tuple(sorted(diagnostics)), stats=stats, has_bom=has_bom)


def file_rules(label: str, *, size: int, examples: int, has_bom: bool) -> list[Diagnostic]:
    found = []
    if not has_bom:
        found.append(diagnose("TK-D003", label, 0))
    if examples < MIN_EXAMPLES:
        found.append(diagnose("TK-D004", label, 0, examples=examples, minimum=MIN_EXAMPLES))
    elif examples < RECOMMENDED_EXAMPLES:
        found.append(diagnose("TK-D005", label, 0, examples=examples, recommended=RECOMMENDED_EXAMPLES))
    return found


def _object_lines(part: Part) -> Iterator[tuple[int, int]]:
    """(local line number, hash) of each line of ``part`` that holds an object, in order."""
    gaps = part.gaps
    next_gap = 0
    skipped = 0
    for index, value in enumerate(part.hashes):
        if next_gap < len(gaps) and gaps[next_gap] == index:
            skipped = gaps[next_gap + 1]
            next_gap += 2
        yield index + 1 + skipped, value


def _duplicates(parts: list[Part], label: str, out: Findings) -> None:
    repeated = repeated_hashes(parts)
    if not repeated:
        return
    first_seen: dict[int, int] = {}  # only for the repeated hashes: small
    base = 0
    for part in parts:
        for local, value in _object_lines(part):
            if value in repeated:
                line_no = base + local
                first = first_seen.setdefault(value, line_no)
                if first != line_no:
                    out.add("TK-D014", label, line_no, first=first)
        base += part.lines


def repeated_hashes(parts: list[Part], *, numpy_above: int = NUMPY_ABOVE) -> set[int]:
    """The example hashes that occur more than once (0, "no example", never counts).

    Up to ``numpy_above`` lines, a set of the hashes (about 60 bytes per example, all in C when
    nothing repeats); beyond, a sorted numpy copy (8 bytes per line), so a file of millions of
    tiny examples stays within the memory budget too.
    """
    total = sum(len(part.hashes) for part in parts)
    if total > numpy_above:
        import numpy

        values = numpy.concatenate([numpy.frombuffer(part.hashes, dtype=numpy.uint64) for part in parts])
        values.sort()
        # a typed 1: with a Python int, numpy copied the whole array to compare
        values = values[int(numpy.searchsorted(values, numpy.uint64(1))):]
        # each repeated value once, where its run ends: one line repeated millions of times is one value
        repeats = values[1:] == values[:-1]
        ends = repeats & numpy.append(~repeats[1:], True)
        return set(values[1:][ends].tolist())
    distinct: set[int] = set()
    for part in parts:
        distinct.update(part.hashes)
    distinct.discard(0)
    if len(distinct) == total - sum(part.hashes.count(0) for part in parts):
        return set()  # every example differs: the common case, two passes in C
    seen: set[int] = set()
    repeated: set[int] = set()
    for part in parts:
        for value in part.hashes:
            if value in seen:
                repeated.add(value)
            elif value:
                seen.add(value)
    return repeated


def _inconsistent_references(parts: list[Part], label: str, out: Findings) -> None:
    rows: list[tuple[int, tuple[str, ...]]] = []
    base = 0
    for part in parts:
        for signature, line_numbers in part.signatures.items():
            if signature:
                rows.extend((base + line_no, signature) for line_no in line_numbers)
        base += part.lines
    if not rows:
        return
    rows.sort()
    first, expected = rows[0]
    expected_text = ", ".join(expected)
    for line_no, signature in rows:
        if signature != expected:
            out.add("TK-D072", label, line_no, fields=", ".join(signature) or "(none)", first=first,
                    expected=expected_text)


def validate(source: BinaryIO | str, size: int, settings: Settings, *, epochs: int | None,
             workers: int, meanwhile: Callable[[], object] | None = None) -> DatasetReport:
    """Validate a file (a path) or an in-memory buffer of ``size`` bytes (``meanwhile``: see
    ``scan_file``)."""
    if size >= MAX_FILE_BYTES:
        diagnostics = [diagnose("TK-D002", settings.label, 0, size=size, limit=MAX_FILE_BYTES)]
        has_bom = _starts_with_bom(source)
        if not has_bom:
            diagnostics.append(diagnose("TK-D003", settings.label, 0))
        return DatasetReport(path=settings.label, diagnostics=tuple(sorted(diagnostics)),
                             stats=_unscanned(size, epochs), has_bom=has_bom)
    if isinstance(source, str):
        parts = scan_file(source, size, settings, workers, meanwhile)
    else:
        parts = [scan_range(source, 0, size, settings)]
    return merge(parts, settings, size, epochs)


def _starts_with_bom(source: BinaryIO | str) -> bool:
    if isinstance(source, str):
        with open(source, "rb") as handle:
            return handle.read(3) == BOM
    source.seek(0)
    return source.read(3) == BOM


def unreadable(label: str, reason: str, epochs: int | None) -> DatasetReport:
    """The report for a file that cannot be opened."""
    return DatasetReport(path=label, diagnostics=(diagnose("TK-D001", label, 0, reason=reason),),
                         stats=_unscanned(0, epochs), has_bom=False)


def _unscanned(size: int, epochs: int | None) -> DatasetStats:
    """The figures of a file whose lines were not read."""
    return DatasetStats(bytes=size, lines=0, examples=0, assistant_turns=0, tokens=0, tokens_exact=False,
                        epochs=epochs if epochs is not None else auto_epochs(0), billed_tokens=0)


def memory_source(data: bytes) -> BinaryIO:
    return io.BytesIO(data)


def file_size(path: str) -> int:
    return os.stat(path).st_size
