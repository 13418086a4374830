"""Diagnostics: one problem found in a manifest or a dataset, with where, what and what to do.

Shared by ``resources/`` and ``datasets/`` (which produce them) and the adapters (which render
them). Rendering is ``path:line:column: severity: message`` plus an indented hint, the format
compilers use, so editors and CI annotations pick it up.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """A single finding. Ordered by (path, line, column, severity, message) for stable output."""

    path: str  # file as given by the user (relative where possible)
    line: int  # 1-based; 0 when the problem concerns the whole file
    column: int = 0  # 1-based; 0 when unknown or the whole line
    severity: Severity = "error"
    message: str = ""
    hint: str | None = field(default=None, compare=False)
    field_path: str | None = field(default=None, compare=False)  # e.g. "spec.hyperparameters.n_epochs"
    code: str | None = field(default=None, compare=False)  # stable rule id, e.g. "TK-D012"

    def render(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        text = f"{where}: {self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "field": self.field_path,
            "code": self.code,
        }


def count(diagnostics: Iterable[Diagnostic]) -> tuple[int, int]:
    """Return (errors, warnings)."""
    errors = warnings = 0
    for d in diagnostics:
        if d.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant ("Did you mean ...?"), or None when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the current directory when under it."""
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    return str(relative) if str(relative) != "." else path.name
