"""Bounded diagnostics: of each rule at most ``MAX_PER_RULE`` are listed per file, the rest counted.

A file of millions of bad lines (blank lines, a line repeated, junk) must cost bounded memory and
output: ``Findings`` keeps the first diagnostics of each rule and counts all of them, and ``listed``
turns what a file found into its report: the first of each rule in line order, then one summary
line per rule found more often, of that rule's severity, so that the verdict and exit code stay
what they would be.
"""

from __future__ import annotations

from typing import Any

from tunekeeper.datasets._rules import RULES, diagnose
from tunekeeper.diagnostics import Diagnostic

MAX_PER_RULE = 100  # diagnostics of one rule listed per file; the rest are counted in a summary line


class Findings(list[Diagnostic]):
    """The diagnostics of one range: at most ``MAX_PER_RULE`` of each rule are kept, all are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def append(self, diagnostic: Diagnostic) -> None:
        if self.wants(diagnostic.code or ""):
            super().append(diagnostic)

    def add(self, code: str, path: str, line: int, **values: Any) -> None:
        """Count one finding of rule ``code``, and build it (``diagnose``) only if it is to be listed:
        a file of millions of bad lines builds no more diagnostics than it lists."""
        if self.wants(code):
            super().append(diagnose(code, path, line, **values))

    def wants(self, code: str) -> bool:
        """Count one more finding of rule ``code``: is it still to be listed? (Build it only then.)"""
        seen = self.counts.get(code, 0) + 1
        self.counts[code] = seen
        return seen <= MAX_PER_RULE

    def listed_in_full(self, code: str) -> bool:
        """Are as many of rule ``code`` listed as will be? (Later ones are only counted.)"""
        return self.counts.get(code, 0) >= MAX_PER_RULE


def listed(found: list[Diagnostic], counts: dict[str, int], label: str) -> list[Diagnostic]:
    """The first ``MAX_PER_RULE`` diagnostics of each rule in line order, and for a rule found more
    often a summary line (of that rule's severity) saying how many more there are."""
    report: list[Diagnostic] = []
    shown: dict[str, int] = {}
    for diagnostic in sorted(found):
        code = diagnostic.code or ""
        shown[code] = shown.get(code, 0) + 1
        if shown[code] <= MAX_PER_RULE:
            report.append(diagnostic)
    for code, count in sorted(counts.items()):
        if count > MAX_PER_RULE:
            report.append(Diagnostic(
                label, 0, 0, RULES[code].severity,
                f"{count - MAX_PER_RULE:,} more lines with problem {code} are not listed (the first "
                f"{MAX_PER_RULE} are; {count:,} in all)",
                hint="fix the lines listed and validate again; the same mistake is often repeated",
                code=code,
            ))
    return report
