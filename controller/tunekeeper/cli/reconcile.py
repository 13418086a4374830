"""``tunekeeper plan | apply | status | chat | results``: the reconcile core from a terminal or CI.

Each command is load -> core -> render. ``load`` reads and checks the manifests (and, before
anything could be sent, every local dataset they reference); ``_embedded.open_target`` connects
the Accounts (or starts the embedded emulator); the core in ``tunekeeper.reconcile`` observes,
plans and applies; ``_render`` draws. Data goes to stdout, diagnostics and progress to stderr.
Every ``TunekeeperError`` becomes its message and hint on stderr and exit status 1 — never a
traceback. Exit codes: 0 success, 1 failure, 2 bad usage (click), 3 ``plan --detailed-exitcode``
with changes pending.

This module holds no reconcile logic: what to change, and how, is decided in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import click

from tunekeeper.cli._embedded import EMBEDDED_ACCOUNT, Target, open_target
from tunekeeper.cli._render import (
    ProgressEvents,
    print_diagnostics,
    print_error,
    status_view,
    stderr_console,
    stdout_console,
)
from tunekeeper.datasets import DatasetReport, DatasetStats
from tunekeeper.diagnostics import Diagnostic, closest
from tunekeeper.errors import DatasetError, NotFound, TunekeeperError
from tunekeeper.netaddr import is_loopback_url
from tunekeeper.reconcile import (
    ConvergeResult,
    NullSink,
    Plan,
    ResourceStatus,
    StateFile,
    check_datasets,
    check_evals,
    compute_digests,
    converge,
    observe_accounts,
    record_status,
    render_plan,
    resolve,
)
from tunekeeper.reconcile import plan as make_plan
from tunekeeper.reconcile import status as derive_status
from tunekeeper.reconcile.comment import CommentFacts, render_comment, render_error_comment
from tunekeeper.reconcile.converge import apply_saved, collect_garbage
from tunekeeper.reconcile.lock import hold
from tunekeeper.reconcile.saved import (
    SavedPlan,
    check_inputs,
    dump_plan,
    is_plan_file,
    load_plan,
    plan_inputs,
)
from tunekeeper.reconcile.state import state_dir
from tunekeeper.resources.specs import AccountSpec, DataRef, Desired, FineTuneJobSpec

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILURE = 1
EXIT_CHANGES = 3
# plan --detailed-exitcode: a resource is blocked or failed (failed job or file, failed gate, ...):
# a scheduled drift check must not report "changes pending" or, worse, success for that.
EXIT_BLOCKED = 4
DEBUG_ENV = "TUNEKEEPER_DEBUG"
# How often `apply --wait` looks again: an emulator answers in milliseconds; on Azure jobs take
# hours and every look costs list calls, so every 15 seconds is plenty.
EMBEDDED_POLL_INTERVAL = 0.2
AZURE_POLL_INTERVAL = 15.0
Format = Literal["text", "json", "markdown"]

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def output_option(help: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``-o text|json|markdown`` as plan, apply and gc take it."""
    return click.option("-o", "--output", type=click.Choice(["text", "json", "markdown"]), default="text",
                        show_default=True, help=help)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Render a TunekeeperError (message, diagnostics, hint) on stderr and exit 1; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TunekeeperError as error:
            print_error(stderr_console(), error)
            raise click.exceptions.Exit(EXIT_FAILURE) from None
        except KeyboardInterrupt:
            stderr_console().print("Interrupted. Run the same command again to continue where it stopped.")
            raise click.exceptions.Exit(130) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as error:  # a bug: say so plainly, keep the traceback for those who ask
            if os.environ.get(DEBUG_ENV):
                raise
            stderr_console().print(f"[red]error:[/] unexpected {type(error).__name__}: {error}")
            stderr_console().print(
                f"  hint: set {DEBUG_ENV}=1 to see the traceback, and report it", style="dim"
            )
            raise click.exceptions.Exit(EXIT_FAILURE) from None

    return wrapper


# -- loading and validation -------------------------------------------------------------------------
def load_desired(paths: Sequence[Path]) -> Desired:
    """Manifests -> Desired with its stack's owner; warnings go to stderr, errors raise ManifestError."""
    from tunekeeper.resources import SKIPPED_MANIFEST, load
    from tunekeeper.resources.stack import with_stack

    given = list(paths) or [Path(".")]
    desired, warnings = load(given)
    print_diagnostics(stderr_console(), warnings)
    skipped = [d for d in warnings if d.code == SKIPPED_MANIFEST]
    if skipped:
        # A manifest that could not be read (a FIFO, a link out of the repository, an oversized file)
        # leaves the stack's desired state unknown: planning without it could prune what it declares.
        raise TunekeeperError(
            f"{len(skipped)} manifest file(s) or folder(s) could not be read (see the warnings above); "
            "nothing is planned or applied with part of the stack missing",
            hint="fix, move or remove them, or name only the folders that hold your manifests",
        )
    desired = with_stack(desired, given)
    if not (desired.jobs or desired.deployments or desired.accounts):
        where = ", ".join(str(p) for p in given)
        stderr_console().print(f"[yellow]warning:[/] no tunekeeper manifests found in {where}")
        stderr_console().print(
            "  hint: manifests have apiVersion: tunekeeper.io/v1alpha1; pass the folder that holds them",
            style="dim",
        )
    return desired


@dataclass(frozen=True, slots=True)
class DataCheck:
    """What the local checks found: warnings (errors raise) and each training file's figures."""

    warnings: tuple[Diagnostic, ...]
    training: Mapping[str, DatasetStats]  # training file (str of DataRef.path) -> figures


def validate_data(desired: Desired) -> DataCheck:
    """Check every local dataset the jobs reference, and every eval gate file; raise DatasetError
    listing every problem.

    Runs before anything is sent: a bad line in a training file must never cost an upload.
    The same checks as ``tunekeeper validate`` (method, base model — through ``fromJob`` chains —
    and, for training files, epochs); each combination is checked once even when jobs share a file.
    """
    training: dict[str, DatasetStats] = {}

    def remember(job: FineTuneJobSpec, ref: DataRef, report: DatasetReport) -> None:
        if ref is job.training_file:
            training[str(ref.path)] = report.stats

    found = check_datasets(desired, display=display_path, on_report=remember)
    for _, eval_report in check_evals(desired):
        found.extend(eval_report.diagnostics)
    if any(d.severity == "error" for d in found):
        raise DatasetError(found)
    print_diagnostics(stderr_console(), found)
    return DataCheck(tuple(found), training)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (for file:line messages)."""
    from tunekeeper.resources import display_path as shown

    return shown(path)


def find_named(kind: str, name: str, candidates: Iterable[str]) -> str:
    """``name`` if it is among ``candidates``; otherwise a TunekeeperError with a did-you-mean."""
    names = sorted(set(candidates))
    if name in names:
        return name
    close = closest(name, names)
    message = f'No {kind} named "{name}".'
    if close:
        message += f' Did you mean "{close}"?'
    hint = (f"{kind}s in these manifests: {', '.join(names)}" if names
            else f"these manifests declare no {kind}; pass the folder that holds it")
    raise TunekeeperError(message, hint=hint)


def account_of(desired: Desired, account: str | None) -> AccountSpec:
    """The AccountSpec a resource runs against (its ``spec.account``, or the only one)."""
    if account is None:
        if len(desired.accounts) == 1:
            return desired.accounts[0]
        raise TunekeeperError("The resource names no account and the manifests hold several",
                              hint="set spec.account on the resource")
    for spec in desired.accounts:
        if spec.name == account:
            return spec
    find_named("Account", account, (a.name for a in desired.accounts))
    raise AssertionError("unreachable")


def _poll_interval(target: Target) -> float:
    """Short for emulators (embedded, or ``tunekeeper emulator`` on loopback), Azure's pace otherwise."""
    local = all(is_loopback_url(a.endpoint) for a in target.desired.accounts)
    return EMBEDDED_POLL_INTERVAL if target.embedded or local else AZURE_POLL_INTERVAL


def _state_file(desired: Desired) -> StateFile:
    return StateFile.for_root(desired.root)


def _echo(text: str) -> None:
    click.echo(text.rstrip("\n"))


# -- plan ----------------------------------------------------------------------------------------------
@click.command(short_help="Show what apply would change; changes nothing.")
@paths_argument
@output_option("How to print the plan.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to change, 3 when changes are pending, 4 when a resource is "
                   "blocked or failed (wins over 3), 1 on error.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help='Also save the plan to FILE; "tunekeeper apply FILE" then executes exactly it.')
@click.option("--replace", "replace", multiple=True, metavar="FineTuneJob/NAME",
              help="Plan to train this FineTuneJob again on purpose (as apply --replace). Repeatable.")
@reports_errors
def plan(paths: tuple[Path, ...], output: Format, detailed_exitcode: bool, out: Path | None,
         replace: tuple[str, ...]) -> None:
    """Show what apply would do to reach the manifests in PATHS. Changes nothing."""
    try:
        to_replace = _replace_names(replace)
        desired = load_desired(paths)
        data = validate_data(desired)
        digests = compute_digests(desired)
        result, facts = asyncio.run(_plan(desired, digests, data, to_replace))
    except TunekeeperError as error:
        if output == "markdown":  # the pull-request comment shows the error, never an empty plan
            _echo(render_error_comment(error.message, getattr(error, "diagnostics", ()), error.hint))
        raise
    _echo(render_comment(result, facts) if output == "markdown" else render_plan(result, output))
    if out is not None:
        given = [str(p) for p in paths] or ["."]
        out.write_bytes(dump_plan(SavedPlan(result, plan_inputs(desired, digests, given))))
        stderr_console().print(
            f'Saved the plan to {display_path(out)}; apply it with "tunekeeper apply {out}".'
        )
    if detailed_exitcode and result.blocked:
        raise click.exceptions.Exit(EXIT_BLOCKED)
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(EXIT_CHANGES)


async def _plan(desired: Desired, digests: dict[Path, str], data: DataCheck,
                replace: frozenset[str] = frozenset()) -> tuple[Plan, CommentFacts]:
    from tunekeeper.reconcile.planning import replacements
    from tunekeeper.reconcile.prices import load_prices

    state = _state_file(desired)  # read, never written: plan changes nothing, not even the cache
    async with open_target(desired) as target:
        observed = await observe_accounts(target.desired, target.clouds, cache=state)
        known = state.known()
        # one resolution serves the plan and the comment's facts (gates, replaced fields, accounts)
        res = resolve(target.desired, observed, digests=digests, known=known)
        made = make_plan(
            target.desired, observed, digests=digests, known=known, resolution=res, replace=replace
        )
        facts = CommentFacts(
            desired=target.desired, datasets=data.training, prices=load_prices(desired.root),
            statuses=derive_status(target.desired, observed, state, digests=digests, resolution=res),
            replaced=replacements(res), warnings=data.warnings,
            account_names={a.name: f"{a.account_name}, resource group {a.resource_group}"
                           for a in target.desired.accounts},
        )
        return made, facts


# -- apply ---------------------------------------------------------------------------------------------
@click.command(short_help="Upload data, train and deploy until the account matches.")
@paths_argument
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="Block until every resource converged (jobs trained, deployments serving).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="With --wait: give up after this many seconds (exit 1); run apply again to continue.")
@output_option("How to print what was done and what is still in progress.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@click.option(
    "--replace",
    "replace",
    multiple=True,
    metavar="FineTuneJob/NAME",
    help="Train this FineTuneJob again on purpose (its current job and model are deleted first). Repeatable.",
)
@reports_errors
def apply(paths: tuple[Path, ...], wait: bool, timeout: float | None, output: str, progress: bool | None,
          replace: tuple[str, ...]) -> None:
    """Make the account match the manifests in PATHS: upload data, train, deploy.

    Everything is validated locally first; nothing is sent unless manifests and datasets pass.
    Without --wait, apply makes all the progress possible now and returns; run it again (from
    CI or cron) to carry on. Interrupted at any point, a rerun adopts what exists.

    Given a plan file written by "tunekeeper plan --out FILE" instead of manifests, apply
    executes exactly that plan, and refuses it when it was edited or when the manifests, the
    data or the account changed since (naming what changed).
    """
    saved: SavedPlan | None = None
    try:
        to_replace = _replace_names(replace)
        if len(paths) == 1 and is_plan_file(paths[0]):
            if to_replace:
                raise TunekeeperError(
                    "--replace cannot change a saved plan",
                    hint="make the plan with the replacement: tunekeeper plan --replace ... --out FILE",
                )
            saved = load_plan(paths[0].read_bytes(), source=str(paths[0]))
            desired = load_desired([Path(p) for p in saved.inputs.paths])
            validate_data(desired)
            check_inputs(saved.inputs, plan_inputs(desired, compute_digests(desired), saved.inputs.paths))
        else:
            desired = load_desired(paths)
            validate_data(desired)
    except TunekeeperError as error:
        print_error(stderr_console(), error, nothing_sent=True)
        raise click.exceptions.Exit(EXIT_FAILURE) from None
    bars = sys.stderr.isatty() if progress is None else progress
    with _locked(desired, "tunekeeper apply"), ProgressEvents(stderr_console(), bars=bars) as events:
        result = asyncio.run(_apply(desired, wait=wait, timeout=timeout, events=events, saved=saved,
                                    replace=to_replace))
        if result.converged:
            events.settle()
    _echo(render_converge(result, output, timeout=timeout))
    # Still in progress without --wait is success; a failure, a blocked resource or a timeout is not.
    if result.errors or result.timed_out or (result.settled and not result.converged):
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _apply(desired: Desired, *, wait: bool, timeout: float | None, events: ProgressEvents,
                 saved: SavedPlan | None = None, replace: frozenset[str] = frozenset()) -> ConvergeResult:
    async with open_target(desired) as target:
        if saved is not None:
            return await apply_saved(
                saved.plan,
                target.desired,
                target.clouds,
                state=_state_file(desired),
                events=events,
                wait=wait,
                timeout=timeout,
                poll_interval=_poll_interval(target),
            )
        return await converge(
            target.desired,
            target.clouds,
            state=_state_file(desired),
            events=events,
            wait=wait,
            timeout=timeout,
            poll_interval=_poll_interval(target),
            replace=replace,
        )


def _replace_names(given: Sequence[str]) -> frozenset[str]:
    """``--replace FineTuneJob/NAME`` values -> FineTuneJob names (only FineTuneJobs can be replaced)."""
    names: set[str] = set()
    for text in given:
        kind, _, name = text.partition("/")
        if kind != "FineTuneJob" or not name:
            raise TunekeeperError(f"--replace {text}: only a FineTuneJob can be replaced",
                                  hint="write --replace FineTuneJob/NAME")
        names.add(name)
    return frozenset(names)


@contextlib.contextmanager
def _locked(desired: Desired, command: str) -> Iterator[None]:
    """The lock of this stack on every account it touches, for the whole command (see reconcile/lock.py)."""
    accounts = [a.name for a in desired.accounts] or [EMBEDDED_ACCOUNT]

    def warn(text: str) -> None:
        stderr_console().print(f"[yellow]warning:[/] {text}")

    with hold(state_dir(desired.root), desired.owner.id, accounts, command=command, warn=warn):
        yield


def render_converge(result: ConvergeResult, output: str, *, timeout: float | None) -> str:
    """What apply leaves behind: done, still in progress, blocked, or failed — and what to do next."""
    if output == "json":
        return json.dumps(result.to_dict(), indent=2, default=str)
    fmt: Format = "markdown" if output == "markdown" else "text"
    remaining = result.remaining
    lines: list[str] = []
    failures = [f"  ! {target}: {message}" for target, message in sorted(result.errors.items())]
    if result.timed_out:
        lines.append(f"Timed out after {timeout:g} s. Still in progress (run apply again to carry on):")
        lines.append(render_plan(remaining, fmt))
    elif not result.settled:
        if failures:
            lines.append("Failed (run apply again once the cause is fixed):")
            lines.extend(failures)
        lines.append("Still in progress (run apply again, or apply --wait, to carry on):")
        lines.append(render_plan(remaining, fmt))
    elif remaining.blocked or result.errors:
        lines.append("Apply finished, but not everything matches the manifests:")
        lines.extend(failures)
        if remaining.blocked:
            lines.append(render_plan(remaining, fmt))
    else:
        count = len(result.statuses)
        lines.append(f"Apply complete: {count} {'resource matches' if count == 1 else 'resources match'} "
                     "the manifests.")
    return "\n".join(lines)


# -- gc ------------------------------------------------------------------------------------------------
@click.command(short_help="Delete this stack's deployments, models and files nothing uses any more.")
@paths_argument
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted, and why.")
@output_option("How to print what was (or would be) deleted.")
@reports_errors
def gc(paths: tuple[Path, ...], dry_run: bool, output: Format) -> None:
    """Delete what this stack created and nothing uses any more: deployments no manifest declares,
    then models of removed jobs and replaced ones beyond retainPrevious, then unused files.

    Needs the whole stack (its root folder). Never touches another stack's objects, a model any
    deployment serves, or a file a job names. apply does the same at the end of every run.
    """
    desired = load_desired(paths)
    validate_data(desired)
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(_locked(desired, "tunekeeper gc"))
        result = asyncio.run(_gc(desired, dry_run=dry_run))
    if dry_run:
        _echo(render_plan(result.remaining, output) if result.remaining.actions or output != "text"
              else "Nothing to collect.")
    elif result.remaining.actions or result.errors:
        _echo(render_converge(result, output, timeout=None))
    else:
        _echo(f"Garbage collected: {result.actions} deletion{'s' if result.actions != 1 else ''}."
              if result.actions else "Nothing to collect.")
    if result.errors:
        raise click.exceptions.Exit(EXIT_FAILURE)


async def _gc(desired: Desired, *, dry_run: bool) -> ConvergeResult:
    async with open_target(desired) as target:
        return await collect_garbage(target.desired, target.clouds, state=_state_file(desired),
                                     events=NullSink(), dry_run=dry_run)


# -- status --------------------------------------------------------------------------------------------
@click.command(short_help="Show each resource's job, model, metrics and deployment.")
@paths_argument
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@reports_errors
def status(paths: tuple[Path, ...], output: str) -> None:
    """Show each resource: readiness, job, fine-tuned model, checkpoints, metrics, deployment state."""
    desired = load_desired(paths)
    rows = asyncio.run(_status(desired))
    if output == "json":
        _echo(json.dumps([row.to_dict() for row in rows], indent=2, default=str))
        return
    stdout_console().print(status_view([row.to_dict() for row in rows]))


async def _status(desired: Desired) -> list[ResourceStatus]:
    state = _state_file(desired)
    async with open_target(desired) as target:
        observations = await observe_accounts(target.desired, target.clouds, cache=state)
        rows = derive_status(target.desired, observations, state)
    record_status(state, rows)  # what was learned is cached locally; the cloud stays the truth
    state.save()
    return rows


# -- chat ----------------------------------------------------------------------------------------------
@click.command(short_help="Ask a deployment a question and print its answer.")
@click.argument("deployment")
@click.argument("prompt")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--system", default=None, help="A system message to send before the prompt.")
@reports_errors
def chat(deployment: str, prompt: str, path: Path | None, system: str | None) -> None:
    """Send PROMPT to DEPLOYMENT (declared in the manifests under PATH) and print its answer."""
    desired = load_desired([path] if path else [])
    name = find_named("Deployment", deployment, (d.name for d in desired.deployments))
    spec = next(d for d in desired.deployments if d.name == name)
    messages: list[dict[str, object]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    _echo(asyncio.run(_chat(desired, spec.account, name, messages)))


async def _chat(desired: Desired, account: str | None, name: str, messages: list[dict[str, object]]) -> str:
    async with open_target(desired) as target:
        cloud = target.clouds[account_of(target.desired, account).name]
        try:
            return await cloud.chat(name, messages)
        except NotFound:
            raise TunekeeperError(
                f"Deployment {name} is not serving yet",
                hint='run "tunekeeper apply --wait", then "tunekeeper status" to follow it',
            ) from None


# -- results -------------------------------------------------------------------------------------------
@click.command(short_help="Show a job's results.csv: terminal view, JSON or PNG charts.")
@click.argument("job")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the loss and token-accuracy charts (train vs validation) into this PNG file.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True,
              help="text: a compact view; json: final and best values; csv: the file as Azure wrote it.")
@reports_errors
def results(job: str, path: Path | None, png: Path | None, output: str) -> None:
    """Show the results.csv (loss, token accuracy per step) of the FineTuneJob named JOB."""
    from tunekeeper.reconcile.results import parse_results, render_png, render_text, require_png_support

    if png is not None:
        require_png_support()
    desired = load_desired([path] if path else [])
    name = find_named("FineTuneJob", job, (j.name for j in desired.jobs))
    spec = next(j for j in desired.jobs if j.name == name)
    job_id, data = asyncio.run(_results(desired, spec))
    parsed = parse_results(data, source=f"results.csv of {job_id}")
    if output == "csv":
        click.echo(data.decode("utf-8-sig"), nl=False)
    elif output == "json":
        _echo(json.dumps({"job": name, "job_id": job_id, **parsed.summary()}, indent=2))
    else:
        _echo(render_text(parsed, title=f"FineTuneJob/{name} ({job_id})"))
    if png is not None:
        render_png(parsed, png, title=f"{name} ({job_id})")
        stderr_console().print(f"Wrote {display_path(png)}")


async def _results(desired: Desired, spec: FineTuneJobSpec) -> tuple[str, bytes]:
    state = _state_file(desired)
    async with open_target(desired) as target:
        account = account_of(target.desired, spec.account)
        observations = await observe_accounts(target.desired, target.clouds, cache=state)
        rows = derive_status(target.desired, observations, state)
        job_id = next((r.job_id for r in rows if r.kind == "FineTuneJob" and r.name == spec.name), None)
        if not job_id:
            raise TunekeeperError(f"FineTuneJob/{spec.name} has no training job yet",
                                  hint='run "tunekeeper apply" to start it')
        cloud = target.clouds[account.name]
        observed = await cloud.get_job(job_id)
        if observed.status != "succeeded" or not observed.result_files:
            raise TunekeeperError(
                f"FineTuneJob/{spec.name} has no results yet: job {observed.id} is {observed.status}",
                hint='results.csv appears when the job succeeds; "tunekeeper apply --wait" waits',
            )
        try:
            return observed.id, await cloud.download_file(observed.result_files[0])
        except NotFound:
            raise TunekeeperError(f"The results file {observed.result_files[0]} of job {observed.id} is gone",
                                  hint="it was deleted from the account") from None
