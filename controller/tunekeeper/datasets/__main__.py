"""``python -m tunekeeper.datasets FILE ...``: check dataset files without the full CLI.

A light entry point for scripts, CI and benchmarks (it starts faster than ``tunekeeper validate``,
which also loads manifests). Diagnostics go to stderr, the summary (or ``-o json``) to stdout.
Exit code 0 when no file has an error, 1 otherwise, 2 for bad usage (argparse's own).
It only parses arguments and prints: the checks are ``validate_dataset``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunekeeper.datasets import METHODS, validate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tunekeeper.datasets", description=__doc__.splitlines()[0]
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JSONL dataset files")
    parser.add_argument("--method", choices=METHODS, default="supervised")
    parser.add_argument("--model", default=None, help="base or fine-tuned model (sets the context limit)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for the billed-token estimate")
    parser.add_argument("--workers", type=int, default=1, help="processes to scan each file with")
    parser.add_argument("--exact-tokens", action="store_true", help="count every example with o200k_base")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--workers and --epochs must be at least 1")

    reports = [
        validate_dataset(path, method=args.method, model=args.model, epochs=args.epochs,
                         workers=args.workers, exact_tokens=args.exact_tokens)
        for path in args.files
    ]
    for report in reports:
        for diagnostic in report.diagnostics:
            print(diagnostic.render(), file=sys.stderr)
    if args.output == "json":
        import orjson

        sys.stdout.write(
            orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        for report in reports:
            s = report.stats
            kind = "tokens" if s.tokens_exact else "tokens (estimated)"
            verdict = "ok" if report.ok else f"{len(report.errors)} error(s)"
            print(f"{report.path}: {verdict}, {len(report.warnings)} warning(s); {s.examples} examples, "
                  f"{s.assistant_turns} assistant turns, {s.tokens} {kind}, {s.epochs} epochs -> "
                  f"{s.billed_tokens} billed training tokens")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
