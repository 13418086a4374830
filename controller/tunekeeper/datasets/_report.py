"""The result of validating one dataset: its diagnostics and summary figures.

Built by ``_scan``; read by the CLI (``tunekeeper validate``, ``-o json``), the manifest loader and
the emulator (which accepts or rejects an uploaded file on ``.ok``). Plain values only: nothing
here reads files or renders text for people.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunekeeper.diagnostics import Diagnostic

# The cookbook's rule for the number of epochs the service picks when none is given: 3, raised
# for small files so that about 100 examples are seen, lowered for large ones so that at most
# about 25,000 are, and kept within 1..25.
AUTO_EPOCHS = 3
AUTO_MIN_SEEN = 100
AUTO_MAX_SEEN = 25_000
AUTO_EPOCHS_RANGE = (1, 25)


def auto_epochs(examples: int) -> int:
    """The number of epochs the service is estimated to choose for ``examples`` examples."""
    low, high = AUTO_EPOCHS_RANGE
    if examples <= 0:
        return AUTO_EPOCHS
    if examples * AUTO_EPOCHS < AUTO_MIN_SEEN:
        return min(high, AUTO_MIN_SEEN // examples)
    if examples * AUTO_EPOCHS > AUTO_MAX_SEEN:
        return max(low, AUTO_MAX_SEEN // examples)
    return AUTO_EPOCHS


@dataclass(frozen=True, slots=True)
class DatasetStats:
    """Summary figures of one dataset file."""

    bytes: int  # file size, BOM included
    lines: int  # lines in the file (a last line without a newline counts)
    examples: int  # non-blank lines: each is meant to be one example, valid or not
    assistant_turns: int  # trainable assistant messages (no weight, or weight 1); DPO: preferred outputs
    tokens: int  # tokens of all examples: exact when tokens_exact, else an estimate (see _examples)
    tokens_exact: bool  # True when every example was counted with o200k_base
    epochs: int  # as given, or auto_epochs(examples) when the job leaves it to the service
    billed_tokens: int  # estimated billed training tokens: tokens x epochs

    def to_dict(self) -> dict[str, object]:
        return {
            "bytes": self.bytes,
            "lines": self.lines,
            "examples": self.examples,
            "assistant_turns": self.assistant_turns,
            "tokens": self.tokens,
            "tokens_exact": self.tokens_exact,
            "epochs": self.epochs,
            "billed_tokens": self.billed_tokens,
        }


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """Everything found in one dataset: all diagnostics, sorted, and the figures."""

    path: str  # the file as the user named it (display_path / filename)
    diagnostics: tuple[Diagnostic, ...]  # sorted by (path, line, column, severity, message)
    stats: DatasetStats
    has_bom: bool  # the file starts with a UTF-8 byte order mark

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "has_bom": self.has_bom,
            "stats": self.stats.to_dict(),
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }
