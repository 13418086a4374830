"""One namespace's custom resources reconciled together by the core, one run at a time.

Called by the kopf handlers (``handlers.py``) for any resource of the namespace: create, update,
resume and timer all ask for the same thing, a *run* of the namespace that started after the
event (a timer accepts one a little older), so however many resources fire at once, each Azure
account is observed once per run with the core's constant number of list calls.

A run:

1. renders every live resource of the namespace (from kopf's indexes) as a manifest and reads
   them with the same loader as the CLI (``resources.load_texts``): the schema, the references,
   the data paths. Each resource is its own manifest, named ``k8s/<cluster>/<namespace>/<Kind>/
   <name>/<uid>``: that name is the manifest label the core tags deployments with, so what a
   resource created is known to be its own (namespace, name, uid); the namespace is the owner
   (``Desired.owner``), so pruning deletes only what this namespace's resources created and no
   longer declare, never another namespace's or cluster's, and only in a run that left nothing out;
2. brings the training data to the operator's disk: a ``configmap:NAME/KEY`` is written under
   ``<dataDir>/<namespace>/.configmaps/``, other paths are relative to ``<dataDir>/<namespace>/``
   (a mounted volume), https URLs are imported by Azure itself. Every local file is checked with
   the dataset rules (``reconcile.check_datasets``) before anything can be uploaded;
3. connects each Account (api key from the Secret it names, or Entra ID / workload identity);
4. calls ``reconcile.converge`` without waiting: it makes all the progress possible now (upload,
   create the job, deploy a finished model) and returns; the next timer looks again.

A resource that is invalid (spec, data, credentials, a forbidden replacement) is left out of the
run, and so are those that depend on it; the others go on. Its verdict is a permanent error with
Ready=False naming the field or line. Must not: plan or apply anything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tunekeeper.cloud import Cloud, connect
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import PermanentCloudError, ReplacementNotAllowed, TransientCloudError, TunekeeperError
from tunekeeper.operator import metrics
from tunekeeper.operator.kube import Kube, KubeError
from tunekeeper.operator.settings import OperatorSettings
from tunekeeper.operator.status import (
    failure_conditions,
    previous_conditions,
    resource_status,
    run_conditions,
    settle_conditions,
)
from tunekeeper.reconcile import (
    Action,
    ActionOutcome,
    Condition,
    ConvergeResult,
    Outcome,
    StateEntry,
    StateFile,
    check_datasets,
    check_evals,
    compute_digests,
    converge,
    markers,
)
from tunekeeper.resources import API_VERSION, AccountSpec, Desired, Owner, TextSource, load_texts

log = logging.getLogger("tunekeeper.operator")

CONFIGMAP_PREFIX = "configmap:"
CONFIGMAP_DIR = ".configmaps"
_CONFIGMAP_REF = re.compile(r"^configmap:([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)$")
DATA_FIELDS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "FineTuneJob": (("trainingFile",), ("validationFile",)),
    "Deployment": (("gates", "evalFile"),),
    "Account": (),
}
DATA_CHECKS_KEPT = 256  # dataset verdicts remembered per namespace, by file size and modification time
# A run drops the resources that cannot go on, then reads the rest again; each round drops one or more.
MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Resource:
    """One custom resource as a run sees it (a copy of its body from kopf's index)."""

    kind: str
    body: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace") or "default")

    @property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid") or "")

    @property
    def generation(self) -> int | None:
        gen = self.body["metadata"].get("generation")
        return int(gen) if gen is not None else None

    @property
    def deleting(self) -> bool:
        return bool(self.body["metadata"].get("deletionTimestamp"))

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def status(self) -> Mapping[str, Any]:
        status = self.body.get("status")
        return status if isinstance(status, Mapping) else {}

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def parent(self) -> str | None:
        """The FineTuneJob this resource trains or deploys from (``fromJob``), if any."""
        if self.kind == "FineTuneJob":
            value = self.spec.get("fromJob")
        elif self.kind == "Deployment":
            model = self.spec.get("model")
            value = model.get("fromJob") if isinstance(model, Mapping) else None
        else:
            value = None
        return str(value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a run says about one resource: its new status, and whether its handler failed."""

    status: Mapping[str, Any]
    permanent: str | None = (
        None  # a permanent error (kopf.PermanentError): nothing happens until the spec changes
    )
    retry_after: float | None = (
        None  # a transient error (kopf.TemporaryError): try again after this many seconds
    )


@dataclass(frozen=True, slots=True)
class RunResult:
    started: float  # time.monotonic() when the run began
    verdicts: Mapping[str, Verdict]  # "Kind/name" -> verdict
    remaining: frozenset[str] = frozenset()  # "Kind/name" with actions still planned (a deletion in progress)
    # why the core did not run to its end (Azure unreachable, an error): a finalizer must not finish then
    unfinished: str | None = None
    left_out: tuple[str, ...] = ()  # "Kind/name" the run could not take on: it pruned and collected nothing

    def verdict(self, key: str) -> Verdict | None:
        return self.verdicts.get(key)


@dataclass(slots=True)
class _Excluded:
    """Resources a run leaves out, with the condition reason and message for each."""

    reasons: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # key -> (reason, message, data?)

    def add(self, key: str, reason: str, message: str, *, data: bool = False) -> bool:
        if key in self.reasons:
            return False
        self.reasons[key] = (reason, message, data)
        return True


class KubeEvents:
    """The core's ``EventSink`` as Kubernetes Events on the resource each step is about."""

    def __init__(
        self,
        post: Callable[[Mapping[str, Any], str, str, str], None],
        bodies: Mapping[str, Mapping[str, Any]],
        file_users: Mapping[str, Sequence[str]],
    ) -> None:
        self._post = post
        self._bodies = bodies
        self._file_users = file_users

    def _targets(self, action: Action) -> list[Mapping[str, Any]]:
        key = str(action.target)
        if action.target.kind == "File":
            return [
                self._bodies[k] for k in self._file_users.get(action.target.name, ()) if k in self._bodies
            ]
        return [self._bodies[key]] if key in self._bodies else []

    def action_started(self, action: Action) -> None:
        pass

    def action_finished(self, action: Action, outcome: ActionOutcome) -> None:
        if not action.kind.changes or outcome.outcome in (Outcome.DEFERRED, Outcome.SKIPPED):
            return
        failed = outcome.outcome in (Outcome.FAILED, Outcome.RETRY)
        verb = action.kind.value.replace("_", " ")
        message = outcome.message or f"{verb.capitalize()} {action.target}: {outcome.outcome.value}."
        reason = "".join(p.capitalize() for p in action.kind.value.split("_")) + ("Failed" if failed else "")
        for body in self._targets(action):
            self._post(body, "Warning" if failed else "Normal", reason, message)

    def progress(self, key: str, label: str, done: float, total: float | None) -> None:
        pass

    def message(self, text: str) -> None:
        log.info("%s", text)


def label_of(settings: OperatorSettings, resource: Resource) -> str:
    """The manifest label of a resource: ``k8s/<cluster>/<namespace>/<Kind>/<name>/<uid>``."""
    return f"k8s/{settings.cluster_name}/{resource.namespace}/{resource.kind}/{resource.name}/{resource.uid}"


def configmap_ref(value: str) -> tuple[str, str] | None:
    """``configmap:NAME/KEY`` -> (NAME, KEY); None for anything else."""
    match = _CONFIGMAP_REF.match(value)
    if match is None or match.group(3) in (".", ".."):  # Kubernetes refuses such keys; never a path step
        return None
    return match.group(1), match.group(3)


class Stack:
    """The resources of one namespace; runs are serialised and shared (see the module docstring)."""

    def __init__(
        self,
        namespace: str,
        settings: OperatorSettings,
        kube: Kube,
        post_event: Callable[[Mapping[str, Any], str, str, str], None],
    ) -> None:
        self.namespace = namespace
        self.settings = settings
        self._kube = kube
        self._post_event = post_event
        self._lock = asyncio.Lock()
        self._last: RunResult | None = None
        self._state = StateFile(None)  # what the core learned; seeded from the resources' status
        self._seeded: set[str] = set()
        self._clouds: dict[tuple[AccountSpec, str], Cloud] = {}
        self._data_checks: dict[tuple[object, ...], tuple[Diagnostic, ...]] = {}
        self._eval_checks: dict[tuple[object, ...], dict[str, tuple[Diagnostic, ...]]] = {}

    async def reconcile(
        self, resources: Callable[[], Sequence[Resource]], *, since: float, deleting: Iterable[str] = ()
    ) -> RunResult:
        """A run that started at or after ``since`` (``time.monotonic()``): the last one, or a new one."""
        gone = frozenset(deleting)
        async with self._lock:
            if self._last is not None and self._last.started >= since and not gone:
                return self._last
            started = time.monotonic()
            try:
                result = await self._run(list(resources()), gone, started)
            finally:
                metrics.RUN_SECONDS.labels(self.namespace).observe(time.monotonic() - started)
            self._last = result
            return result

    async def close(self) -> None:
        for cloud in self._clouds.values():
            await cloud.close()
        self._clouds.clear()

    # -- one run -------------------------------------------------------------------------------------
    async def _run(self, resources: list[Resource], deleting: frozenset[str], started: float) -> RunResult:
        now = datetime.now(UTC)
        metrics.RUNS.labels(self.namespace).inc()
        by_key = {r.key: r for r in resources}
        leaving = {r.key for r in resources if r.deleting} | set(deleting)
        used = self._in_use(resources, leaving)
        declared = [r for r in resources if r.key not in leaving or r.key in used]
        gone_labels = tuple(label_of(self.settings, by_key[k]) for k in sorted(leaving - used) if k in by_key)
        self._seed(declared)
        excluded = _Excluded()
        result: ConvergeResult | None = None
        desired: Desired | None = None
        transient: TransientCloudError | None = None
        fatal: str | None = None
        for _ in range(MAX_ATTEMPTS):
            live = [r for r in declared if r.key not in excluded.reasons]
            try:
                desired, clouds = await self._prepare(live, excluded, gone_labels)
                if desired is None:
                    continue  # something was excluded: read the rest again
                if not desired.accounts:
                    break  # no account: nothing to observe, nothing to clean up (gc runs with none declared)
                digests = compute_digests(desired)
                result = await converge(
                    desired,
                    clouds,
                    state=self._state,
                    wait=False,
                    poll_interval=self.settings.poll_interval,
                    digests=digests,
                    events=self._events(live, desired, digests),
                )
                break
            except ReplacementNotAllowed as exc:
                if not self._exclude_named(exc.message, live, excluded, "ReplacementNotAllowed", exc.hint):
                    fatal = exc.message
                    break
            except TransientCloudError as exc:
                transient = exc
                break
            except TunekeeperError as exc:
                fatal = exc.message + (f" ({exc.hint})" if exc.hint else "")
                break
        verdicts = self._verdicts(resources, declared, excluded, desired, result, transient, fatal, now)
        remaining = (
            frozenset(str(a.target) for a in result.remaining.actions) if result is not None else frozenset()
        )
        unfinished = None
        if transient is not None:
            unfinished = f"Azure answered with a transient error: {transient.message.rstrip('.')}."
        elif fatal is not None:
            unfinished = fatal
        elif result is None and desired is None:
            unfinished = "The namespace's resources could not be read."
        return RunResult(started, verdicts, remaining, unfinished, tuple(sorted(excluded.reasons)))

    def _in_use(self, resources: Sequence[Resource], leaving: set[str]) -> set[str]:
        """Resources being deleted that a live one still needs: their parents, and Accounts in use."""
        live = [r for r in resources if r.key not in leaving]
        jobs = {r.name: r for r in resources if r.kind == "FineTuneJob"}
        needed: set[str] = set()
        todo: list[str | None] = [r.parent for r in live if r.parent]
        while todo:
            name = todo.pop()
            if name and f"FineTuneJob/{name}" not in needed and name in jobs:
                needed.add(f"FineTuneJob/{name}")
                todo.append(jobs[name].parent)
        accounts = [r for r in resources if r.kind == "Account"]
        users = [r for r in live if r.kind != "Account"]
        for account in accounts:
            named = any(r.spec.get("account") == account.name for r in users)
            implicit = len(accounts) == 1 and any(not r.spec.get("account") for r in users)
            if named or implicit:
                needed.add(account.key)
        return needed & leaving

    @staticmethod
    def users_of(resources: Sequence[Resource], target: Resource) -> list[str]:
        """Live resources that need ``target``: children of a FineTuneJob, users of an Account."""
        live = [r for r in resources if not r.deleting and r.key != target.key and r.kind != "Account"]
        if target.kind == "FineTuneJob":
            return sorted(r.key for r in live if r.parent == target.name)
        if target.kind == "Account":
            only = sum(1 for r in resources if r.kind == "Account") == 1
            return sorted(
                r.key
                for r in live
                if r.spec.get("account") == target.name or (only and not r.spec.get("account"))
            )
        return []

    def _seed(self, resources: Iterable[Resource]) -> None:
        """First sight of a resource (operator restart): its status tells the core what it knew."""
        for r in resources:
            if r.kind == "Account" or r.key in self._seeded:
                continue
            self._seeded.add(r.key)
            status = r.status
            entry: dict[str, Any] = {"conditions": [c.to_dict() for c in previous_conditions(status)]}
            if status.get("jobId") and r.kind == "FineTuneJob":
                entry["job_id"] = status["jobId"]
            dep = status.get("deployment")
            if isinstance(dep, Mapping) and dep.get("provisioningState") == "Succeeded":
                entry["provisioned"] = True
            if self._state.resource(r.key) == StateEntry():
                self._state.record(r.key, StateEntry.from_dict(entry))

    async def _prepare(
        self, live: Sequence[Resource], excluded: _Excluded, gone_labels: tuple[str, ...]
    ) -> tuple[Desired | None, dict[str, Cloud]]:
        """Desired and connected clouds for ``live``; None when it excluded something (read again)."""
        dependents = False
        while self._exclude_dependents(live, excluded):  # a child's child goes too
            dependents = True
        if dependents:
            return None, {}
        root = self.settings.namespace_dir(self.namespace)
        sources: list[TextSource] = []
        owners: dict[str, str] = {}  # display -> resource key
        shown: dict[Path, str] = {}  # local data path -> how messages name it
        dropped = False
        for r in live:
            try:
                text = await self._render(r, root, shown)
            except KubeError as exc:
                dropped |= excluded.add(r.key, "DataSourceMissing", exc.message + ".", data=True)
                continue
            display = label_of(self.settings, r)
            owners[display] = r.key
            sources.append(TextSource(text, root / f".{r.kind}-{r.name}.yaml", display))
        if dropped:
            return None, {}
        desired, diagnostics = load_texts(sources, root=root)
        for d in diagnostics:
            if d.severity == "error" and d.path in owners:
                dropped |= excluded.add(owners[d.path], "InvalidSpec", _spec_message(d))
        if dropped:
            return None, {}
        if not desired.accounts and (desired.jobs or desired.deployments):
            for r in live:
                if r.kind != "Account":
                    excluded.add(
                        r.key,
                        "NoAccount",
                        f"No Account in namespace {self.namespace}: declare one "
                        "(the emulator needs one too).",
                    )
            return None, {}
        # The namespace is the stack: its owner marks what the run creates, and only a run that
        # left nothing out may prune (an excluded resource's objects are still declared).
        owner = Owner(
            f"k8s:{self.settings.cluster_name}/{self.namespace}",
            f"namespace {self.namespace} of cluster {self.settings.cluster_name}",
        )
        desired = dataclasses.replace(
            desired, files=desired.files + gone_labels, owner=owner, complete=not excluded.reasons
        )
        for job in desired.jobs:
            problems = [d for d in self._check_data(desired, job.name, shown) if d.severity == "error"]
            if problems:
                key = f"FineTuneJob/{job.name}"
                dropped |= excluded.add(key, "InvalidData", _problems(problems), data=True)
        for deployment, problems in self._check_evals(desired, shown).items():
            dropped |= excluded.add(deployment, "InvalidData", _problems(problems), data=True)
        if dropped:
            return None, {}
        clouds: dict[str, Cloud] = {}
        for account in desired.accounts:
            try:
                clouds[account.name] = await self._cloud(account)
            except KubeError as exc:
                dropped |= excluded.add(f"Account/{account.name}", "CredentialsMissing", exc.message + ".")
            except PermanentCloudError as exc:
                dropped |= excluded.add(f"Account/{account.name}", "InvalidSpec", exc.message + ".")
        if dropped:
            return None, {}
        return desired, clouds

    @staticmethod
    def _exclude_dependents(live: Sequence[Resource], excluded: _Excluded) -> bool:
        """Leave out what depends on a left-out resource (its fromJob parent, its Account), saying which."""
        accounts = [r for r in live if r.kind == "Account"] + [
            Resource("Account", {"metadata": {"name": k.partition("/")[2]}})
            for k in excluded.reasons
            if k.startswith("Account/")
        ]
        dropped = False
        for r in live:
            if r.key in excluded.reasons or r.kind == "Account":
                continue
            named = r.spec.get("account")
            account = str(named) if named else (accounts[0].name if len(accounts) == 1 else None)
            for cause in (
                f"FineTuneJob/{r.parent}" if r.parent else None,
                f"Account/{account}" if account else None,
            ):
                if cause is not None and cause in excluded.reasons:
                    reason, message, _ = excluded.reasons[cause]
                    text = f"{cause} cannot go on ({reason}): {message}"
                    dropped |= excluded.add(r.key, "DependencyFailed", text)
                    break
        return dropped

    async def _render(self, r: Resource, root: Path, shown: dict[Path, str]) -> str:
        """The resource as a manifest; ConfigMap data written to disk and named by a relative path."""
        spec = _plain(r.spec)
        for path in DATA_FIELDS[r.kind]:
            parent: Any = spec
            for part in path[:-1]:
                parent = parent.get(part) if isinstance(parent, dict) else None
            value = parent.get(path[-1]) if isinstance(parent, dict) else None
            if isinstance(value, str):
                ref = configmap_ref(value)
                if ref is None and value.startswith(CONFIGMAP_PREFIX):
                    raise KubeError(
                        f"spec.{'.'.join(path)} {value!r} names no ConfigMap key: write "
                        "configmap:NAME/KEY (a ConfigMap of this namespace, one of its keys)"
                    )
                if ref is not None:
                    relative = f"{CONFIGMAP_DIR}/{ref[0]}/{ref[1]}"
                    data = await self._kube.config_map_value(r.namespace, ref[0], ref[1])
                    _write_if_changed(root / relative, data)
                    parent[path[-1]] = relative
                    shown[(root / relative).resolve()] = value
                elif "://" not in value:
                    shown[(root / value).resolve()] = value
        document = {
            "apiVersion": API_VERSION,
            "kind": r.kind,
            "metadata": {"name": r.name, "namespace": r.namespace},
            "spec": spec,
        }
        return str(yaml.safe_dump(document, sort_keys=False))

    def _check_data(self, desired: Desired, job: str, shown: Mapping[Path, str]) -> tuple[Diagnostic, ...]:
        """The dataset rules on one job's local files; an unchanged file is not read again."""
        spec = next(j for j in desired.jobs if j.name == job)
        stamp: list[object] = [
            spec.method.value,
            spec.hyperparameters.n_epochs,
            spec.base_model,
            spec.from_job,
        ]
        for ref in (spec.training_file, spec.validation_file):
            if ref is not None and ref.path is not None:
                try:
                    info = ref.path.stat()
                except OSError:
                    return ()  # compute_digests names the unreadable file
                stamp += [str(ref.path), info.st_size, info.st_mtime_ns]
        key = tuple(stamp)
        if key not in self._data_checks:
            found = check_datasets(
                desired, display=lambda p: shown.get(p, p.name), jobs=lambda j: j.name == job
            )
            self._data_checks[key] = tuple(found)
            if len(self._data_checks) > DATA_CHECKS_KEPT:  # the oldest: a file that has changed since
                del self._data_checks[next(iter(self._data_checks))]
        return self._data_checks[key]

    def _check_evals(self, desired: Desired, shown: Mapping[Path, str]) -> dict[str, list[Diagnostic]]:
        """Errors of the eval gate files by Deployment key, as ``tunekeeper validate`` finds them (the
        format, and the system message the model was trained with); unchanged files are not read again."""
        stamp: list[object] = []
        for dep in desired.deployments:
            ref = dep.gates.eval_file
            if ref is not None and ref.path is not None:
                try:
                    info = ref.path.stat()
                except OSError:
                    continue  # the loader names a missing eval file
                stamp += [dep.name, str(ref.path), info.st_size, info.st_mtime_ns]
        if not stamp:
            return {}
        for job in desired.jobs:  # an eval's system message is compared with the training data
            path = job.training_file.path
            with contextlib.suppress(OSError):
                if path is not None:
                    info = path.stat()
                    stamp += [job.name, str(path), info.st_size, info.st_mtime_ns]
        key = tuple(stamp)
        if key not in self._eval_checks:
            verdicts: dict[str, tuple[Diagnostic, ...]] = {}
            for check, report in check_evals(desired, display=lambda p: shown.get(p, p.name)):
                errors = tuple(d for d in report.diagnostics if d.severity == "error")
                if errors:
                    verdicts[check.deployment] = errors
            self._eval_checks[key] = verdicts
            if len(self._eval_checks) > DATA_CHECKS_KEPT:  # the oldest: a file that has changed since
                del self._eval_checks[next(iter(self._eval_checks))]
        return {deployment: list(errors) for deployment, errors in self._eval_checks[key].items()}

    async def _cloud(self, account: AccountSpec) -> Cloud:
        key = ""
        if account.auth.api_key_secret is not None:
            ref = account.auth.api_key_secret
            key = await self._kube.secret_value(self.namespace, ref.name, ref.key)
        cache_key = (account, hashlib.sha256(key.encode()).hexdigest())
        if cache_key not in self._clouds:
            for old in [k for k in self._clouds if k[0].name == account.name]:
                await self._clouds.pop(old).close()
            self._clouds[cache_key] = await connect(
                account, api_key=key or None, settings=self.settings.cloud
            )
        return self._clouds[cache_key]

    def _exclude_named(
        self, message: str, live: Sequence[Resource], excluded: _Excluded, reason: str, hint: str | None
    ) -> bool:
        """Exclude the resources a multi-line core error names by their manifest label."""
        dropped = False
        for r in live:
            label = label_of(self.settings, r)
            for line in message.splitlines():
                if label in line:
                    text = line.strip().split(f"{r.kind} {r.name}: ", 1)[-1]
                    dropped |= excluded.add(
                        r.key, reason, text.rstrip(".") + "." + (f" Hint: {hint}." if hint else "")
                    )
        return dropped

    def _events(self, live: Sequence[Resource], desired: Desired, digests: Mapping[Path, str]) -> KubeEvents:
        bodies = {r.key: r.body for r in live}
        users: dict[str, list[str]] = {}
        for job in desired.jobs:
            for ref in (job.training_file, job.validation_file):
                if ref is not None:
                    name = markers.remote_filename(ref, markers.data_digest(ref, digests), desired.owner.id)
                    users.setdefault(name, []).append(f"FineTuneJob/{job.name}")
        return KubeEvents(self._post_event, bodies, users)

    def _verdicts(
        self,
        resources: Sequence[Resource],
        declared: Sequence[Resource],
        excluded: _Excluded,
        desired: Desired | None,
        result: ConvergeResult | None,
        transient: TransientCloudError | None,
        fatal: str | None,
        now: datetime,
    ) -> dict[str, Verdict]:
        rows = {f"{row.kind}/{row.name}": row for row in result.statuses} if result is not None else {}
        in_run = {a.name for a in desired.accounts} if desired is not None else set()
        verdicts: dict[str, Verdict] = {}
        for r in declared:
            previous = previous_conditions(r.status)
            base: dict[str, Any] = {"observedGeneration": r.generation}
            if r.key in excluded.reasons:
                reason, message, data = excluded.reasons[r.key]
                metrics.ERRORS.labels(self.namespace, r.kind, "invalid").inc()
                conditions = settle_conditions(
                    r.kind,
                    previous,
                    failure_conditions(r.kind, reason, message, data=data),
                    r.generation,
                    now,
                )
                verdicts[r.key] = Verdict(
                    {**base, "conditions": conditions, "error": message}, permanent=message
                )
                continue
            if transient is not None:
                metrics.ERRORS.labels(self.namespace, r.kind, "transient").inc()
                message = f"Azure answered with a transient error; retrying: {transient.message.rstrip('.')}."
                conditions = settle_conditions(
                    r.kind,
                    previous,
                    [Condition("Degraded", "True", "CloudUnavailable", message)],
                    r.generation,
                    now,
                )
                verdicts[r.key] = Verdict(
                    {**base, "conditions": conditions},
                    retry_after=max(1.0, transient.retry_after or self.settings.interval),
                )
                continue
            if fatal is not None:
                metrics.ERRORS.labels(self.namespace, r.kind, "permanent").inc()
                conditions = settle_conditions(
                    r.kind, previous, failure_conditions(r.kind, "ReconcileFailed", fatal), r.generation, now
                )
                verdicts[r.key] = Verdict({**base, "conditions": conditions, "error": fatal}, permanent=fatal)
                continue
            if r.kind == "Account":
                ok = r.name in in_run
                ready = (
                    Condition(
                        "Ready", "True", "Connected", f"Credentials found for {r.spec.get('endpoint')}."
                    )
                    if ok
                    else Condition("Ready", "Unknown", "NotUsed", "No resource uses this Account yet.")
                )
                verdicts[r.key] = Verdict(
                    {**base, "conditions": settle_conditions(r.kind, previous, [ready], r.generation, now)}
                )
                continue
            row = rows.get(r.key)
            if row is None or result is None:
                verdicts[r.key] = Verdict(
                    {**base, "conditions": settle_conditions(r.kind, previous, [], r.generation, now)}
                )
                continue
            new = list(row.conditions) + run_conditions(r.kind, r.name, row, result.remaining, result.errors)
            conditions = settle_conditions(r.kind, previous, new, r.generation, now)
            error = result.errors.get(r.key)
            if error:
                metrics.ERRORS.labels(self.namespace, r.kind, "permanent").inc()
            verdicts[r.key] = Verdict(
                {**base, **resource_status(r.kind, row), "conditions": conditions}, permanent=error
            )
        metrics.record_jobs(
            self.namespace, [row.job_status for row in rows.values() if row.kind == "FineTuneJob"]
        )
        return verdicts


def _spec_message(d: Diagnostic) -> str:
    text = d.message.rstrip(".") + "."
    return text + (f" Hint: {d.hint.rstrip('.')}." if d.hint else "")


def _plain(value: Any) -> Any:
    """A deep copy made only of dicts, lists and scalars (kopf's views are mappings, not dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, and only when the bytes differ (the file's mtime keys the dataset check)."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _problems(problems: Sequence[Diagnostic]) -> str:
    """The first three problems of a file as one status message, each with its file, line and hint."""
    message = "; ".join(
        d.render().replace("\n  hint:", " (hint:") + (")" if d.hint else "") for d in problems[:3]
    )
    return message + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
