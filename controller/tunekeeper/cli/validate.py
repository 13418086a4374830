"""``tunekeeper validate [PATH ...]``: check manifests and the datasets they reference, before a cent is
spent.

A thin adapter: ``tunekeeper.resources.load`` checks the manifests, ``tunekeeper.datasets.
validate_dataset`` checks each local training / validation file with the job's method, base
model and epochs; ``*.jsonl`` files named directly are checked as datasets. Diagnostics go to
stderr (``path:line:col: error: message`` + hint), the per-dataset summary table to stdout, or
one JSON document to stdout with ``-o json``. Exit 0 when valid (warnings allowed), 1 when not,
2 for bad usage (click's).

Must not: decide validity itself (the core does), touch the network, or print a traceback for
any input. Heavy modules are imported when needed, so the command starts fast.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tunekeeper.diagnostics import Diagnostic, count, display_path

if TYPE_CHECKING:
    from tunekeeper.datasets import DatasetReport
    from tunekeeper.datasets._eval import EvalReport
    from tunekeeper.reconcile.costs import PriceTable
    from tunekeeper.reconcile.datacheck import EvalCheck
    from tunekeeper.resources import Desired

DATASET_SUFFIXES = (".jsonl",)


@dataclass(frozen=True, slots=True)
class _DatasetCheck:
    """One dataset to check, and why: which job (or a file named directly) and in which role."""

    path: Path
    display: str
    method: str
    model: str | None
    epochs: int | None
    used_by: tuple[str, ...] = ()  # "FineTuneJob/name trainingFile"
    training: bool = True  # billed (a training file, or a file named directly)
    training_type: str | None = None  # the job's trainingType, for the cost estimate


@dataclass(slots=True)
class _Result:
    desired: Desired | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    datasets: list[tuple[_DatasetCheck, DatasetReport]] = field(default_factory=list)
    remote: list[tuple[str, str]] = field(default_factory=list)  # (url, used_by): imported by the service
    evals: list[tuple[EvalCheck, EvalReport]] = field(default_factory=list)


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json (one document on stdout) for machines.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes per dataset (large files are split at line boundaries; at most one per MB "
                   "of the file, and 64). Default: one per 4 MB of the file, at most one per core.")
@click.option(
    "--exact-tokens", is_flag=True, help="Count every token with the tokenizer (slower; default estimates)."
)
@click.option("--method", type=click.Choice(["supervised", "dpo", "reinforcement"]), default="supervised",
              show_default=True, help="Method for .jsonl files named directly.")
@click.option(
    "--model", default=None, help="Base model for .jsonl files named directly (context-length check)."
)
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Repository root that data paths must stay inside (default: nearest folder with .git).")
def validate(paths: tuple[Path, ...], output: str, workers: int | None, exact_tokens: bool, method: str,
             model: str | None, root: Path | None) -> None:
    """Check manifests (and the datasets they reference) or dataset files.

    PATH is a manifest file, a folder of manifests (searched recursively for *.yaml / *.yml) or a
    .jsonl dataset; default: the current folder. Exits 0 when everything is valid (warnings
    allowed), 1 when anything is invalid.
    """
    try:
        result = _run(list(paths) or [Path(".")], workers=workers, exact_tokens=exact_tokens, method=method,
                      model=model, root=root, meanwhile=_load_renderer if output == "text" else None)
    except Exception as exc:  # never a traceback for any input: report it as a diagnostic
        if os.environ.get("TUNEKEEPER_DEBUG"):
            raise
        result = _Result(
            diagnostics=[
                Diagnostic(
                    "<validate>",
                    0,
                    0,
                    "error",
                    f"unexpected {type(exc).__name__}: {exc}",
                    hint="this is a bug in tunekeeper; set TUNEKEEPER_DEBUG=1 for details",
                    code="TK-V999",
                )
            ]
        )
    errors, _ = count(result.diagnostics)
    if output == "json":
        _print_json(result)
    else:
        _print_text(result)
    sys.exit(1 if errors else 0)


def _run(paths: Sequence[Path], *, workers: int | None, exact_tokens: bool, method: str, model: str | None,
         root: Path | None, meanwhile: Callable[[], object] | None = None) -> _Result:
    result = _Result()
    datasets = [p for p in paths if p.is_file() and p.suffix.lower() in DATASET_SUFFIXES]
    manifests = [p for p in paths if p not in datasets]
    checks: list[_DatasetCheck] = [
        _DatasetCheck(p.absolute(), display_path(p.absolute()), method, model, None, ("named directly",))
        for p in datasets
    ]
    if manifests:  # the manifest machinery (YAML, JSON Schema) loads only when there are manifests
        from tunekeeper.resources import load_with_diagnostics, manifest_files

        found, _ = manifest_files(manifests)
        desired, diagnostics = load_with_diagnostics(manifests, root=root)
        result.desired = desired
        result.diagnostics += diagnostics
        checks += _dataset_checks(desired, result)
        if (
            count(diagnostics)[0] == 0
            and not (desired.accounts or desired.jobs or desired.deployments)
            and not datasets
        ):
            where = ", ".join(str(p) for p in manifests)
            result.diagnostics.append(Diagnostic(
                where, 0, 0, "error",
                f"no tunekeeper manifests found in {where}" + (f" ({len(found)} YAML files looked at)"
                                                               if found else ""),
                hint="manifests have apiVersion: tunekeeper.io/v1alpha1; or name .jsonl datasets directly",
                code="TK-V001"))
    if checks:
        from tunekeeper.datasets import validate_dataset

        for check in _merge(checks):
            report = validate_dataset(check.path, method=check.method, display_path=check.display,
                                      model=check.model, epochs=check.epochs, workers=workers,
                                      exact_tokens=exact_tokens, meanwhile=meanwhile)
            result.datasets.append((check, report))
            result.diagnostics += report.diagnostics
    if result.desired is not None:
        from tunekeeper.reconcile.datacheck import check_evals

        result.evals = check_evals(result.desired)
        for _, eval_report in result.evals:
            result.diagnostics += eval_report.diagnostics
    result.diagnostics.sort()
    return result


def _dataset_checks(desired: Desired, result: _Result) -> list[_DatasetCheck]:
    from tunekeeper.reconcile.datacheck import readable_inside
    from tunekeeper.resources.specs import base_model_of

    jobs = {j.name: j for j in desired.jobs}
    checks = []
    for job in desired.jobs:
        model = base_model_of(job, jobs)
        for role, ref in (("trainingFile", job.training_file), ("validationFile", job.validation_file)):
            if ref is None:
                continue
            used_by = f"FineTuneJob/{job.name} {role}"
            if ref.url is not None:
                result.remote.append((ref.url, used_by))
            elif ref.path is not None and readable_inside(ref.path, desired.root):
                training = role == "trainingFile"
                checks.append(_DatasetCheck(ref.path, display_path(ref.path), job.method.value, model,
                                            job.hyperparameters.n_epochs if training else None, (used_by,),
                                            training, job.training_type.value if job.training_type else None))
    return checks


def _merge(checks: Sequence[_DatasetCheck]) -> list[_DatasetCheck]:
    """One check per (file, method, model, epochs); the reasons are joined."""
    merged: dict[tuple[Path, str, str | None, int | None, bool, str | None], _DatasetCheck] = {}
    for c in checks:
        key = (c.path, c.method, c.model, c.epochs, c.training, c.training_type)
        if key in merged:
            merged[key] = dataclasses.replace(merged[key], used_by=merged[key].used_by + c.used_by)
        else:
            merged[key] = c
    return sorted(merged.values(), key=lambda c: (c.display, c.method))


# -- rendering ---------------------------------------------------------------------------------


def _load_renderer() -> None:
    """Import what ``_print_text`` renders with. Given to the dataset scan as ``meanwhile``: when the
    scan forks workers, this process loads rich while they already read the file."""
    import rich.console
    import rich.markup
    import rich.table  # noqa: F401


def _print_text(result: _Result) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    no_color = bool(os.environ.get("NO_COLOR"))
    err = Console(stderr=True, highlight=False, no_color=no_color, soft_wrap=True)
    out = Console(highlight=False, no_color=no_color, width=None if sys.stdout.isatty() else 160)
    for d in result.diagnostics:
        head, _, hint = d.render().partition("\n")
        style = "red" if d.severity == "error" else "yellow"
        err.print(escape(head), style=style)
        if hint:
            err.print(escape(hint), style="dim")
    if result.datasets:
        table = Table(title="Datasets", title_justify="left")
        table.add_column("file", no_wrap=True)
        table.add_column("method")
        for column in ("examples", "assistant turns", "tokens", "epochs", "est. billed tokens", "est. cost"):
            table.add_column(column, justify="right")
        table.add_column("result")
        prices = _prices(result)
        for check, report in result.datasets:
            stats = report.stats
            errors, warnings = count(report.diagnostics)
            verdict = (
                "[red]invalid[/]" if errors else ("[yellow]ok (warnings)[/]" if warnings else "[green]ok[/]")
            )
            approx = "" if stats.tokens_exact else "~"
            billed = (f"{approx}{stats.billed_tokens:,}" if check.training and stats.billed_tokens is not None
                      else "-")
            if not check.training:
                epochs = "-"
            elif check.epochs:
                epochs = str(check.epochs)
            else:
                epochs = f"auto ({stats.epochs})" if stats.epochs else "auto"
            table.add_row(
                escape(check.display),
                check.method,
                f"{stats.examples:,}",
                f"{stats.assistant_turns:,}",
                f"{approx}{stats.tokens:,}",
                epochs,
                billed,
                _cost(prices, check, report),
                verdict,
            )
        out.print(table)
        if prices is not None and any(c.training and c.model for c, _ in result.datasets):
            err.print(escape(f"note: estimated costs use {prices.citation}"), style="dim")
    if result.evals:
        table = Table(title="Eval files", title_justify="left")
        table.add_column("file", no_wrap=True)
        table.add_column("used by")
        table.add_column("examples", justify="right")
        table.add_column("system message checked against")
        table.add_column("result")
        for gate, eval_report in result.evals:
            errors, warnings = count(eval_report.diagnostics)
            verdict = (
                "[red]invalid[/]" if errors else ("[yellow]ok (warnings)[/]" if warnings else "[green]ok[/]")
            )
            against = f"{gate.training[1]} ({gate.training[2]})" if gate.training else "-"
            table.add_row(
                escape(gate.display),
                escape(gate.used_by),
                f"{eval_report.examples:,}",
                escape(against),
                verdict,
            )
        out.print(table)
    for url, used_by in result.remote:
        err.print(escape(f"note: {used_by} {url} is imported by the service; its content is checked there"),
                  style="dim")
    errors, warnings = count(result.diagnostics)
    resources = _resource_count(result.desired)
    what = f"{resources} resource(s), {len(result.datasets)} dataset(s)"
    if result.evals:
        what += f", {len(result.evals)} eval file(s)"
    if errors:
        err.print(f"Invalid: {errors} error(s), {warnings} warning(s) ({what}).", style="bold red")
    else:
        err.print(f"Valid: {what}" + (f", {warnings} warning(s)." if warnings else "."), style="bold green")


def _prices(result: _Result) -> PriceTable | None:
    """The price table for cost estimates; a bad override file is reported, not fatal to validation.

    None when no training file has a model to price (datasets named without ``--model``): then the
    price table and the reconcile package it lives in are not even imported, so that validating a
    data file starts fast.
    """
    if not any(check.training and check.model is not None for check, _ in result.datasets):
        return None
    from tunekeeper.errors import TunekeeperError
    from tunekeeper.reconcile.prices import load_prices

    try:
        return load_prices(result.desired.root if result.desired else None)
    except TunekeeperError as exc:
        result.diagnostics.append(
            Diagnostic("<prices>", 0, 0, "warning", exc.message, hint=exc.hint, code="TK-V010")
        )
        return None


def _cost(prices: PriceTable | None, check: _DatasetCheck, report: DatasetReport) -> str:
    if prices is None or not check.training or report.stats.billed_tokens is None or check.model is None:
        return "-"
    from tunekeeper.reconcile.costs import training_cost

    return training_cost(prices, check.model, check.training_type, report.stats.billed_tokens).text()


def _resource_count(desired: Desired | None) -> int:
    return 0 if desired is None else len(desired.accounts) + len(desired.jobs) + len(desired.deployments)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _print_json(result: _Result) -> None:
    import orjson

    resources: list[dict[str, Any]] = []
    if result.desired is not None:
        for kind, specs in (("Account", result.desired.accounts), ("FineTuneJob", result.desired.jobs),
                            ("Deployment", result.desired.deployments)):
            for spec in specs:
                resources.append({"kind": kind, "name": spec.name, "source": str(spec.source),
                                  "spec": _jsonable(spec)})
    prices = _prices(result)

    def cost(check: _DatasetCheck, report: DatasetReport) -> dict[str, object] | None:
        if prices is None or not check.training or check.model is None:
            return None
        from tunekeeper.reconcile.costs import training_cost

        estimate = training_cost(prices, check.model, check.training_type, report.stats.billed_tokens)
        return {
            "amount": None if estimate.amount is None else str(estimate.amount),
            "currency": estimate.currency,
            "basis": estimate.basis,
            "prices": prices.citation,
        }

    errors, warnings = count(result.diagnostics)
    document = {
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "root": str(result.desired.root) if result.desired else None,
        "resources": resources,
        "datasets": [
            {
                "path": check.display,
                "method": check.method,
                "model": check.model,
                "used_by": list(check.used_by),
                "role": "training" if check.training else "validation",
                "ok": report.ok,
                "stats": report.stats.to_dict(),
                "has_bom": report.has_bom,
                "estimated_cost": cost(check, report),
                "diagnostics": [d.to_dict() for d in report.diagnostics],
            }
            for check, report in result.datasets
        ],
        "remote_datasets": [{"url": url, "used_by": used_by} for url, used_by in result.remote],
        "eval_files": [
            {
                **report.to_dict(),
                "used_by": gate.used_by,
                "trained_with": gate.training[1] if gate.training else None,
            }
            for gate, report in result.evals
        ],
        "diagnostics": [d.to_dict() for d in result.diagnostics],
    }
    sys.stdout.buffer.write(orjson.dumps(document, default=str, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()
