"""Prometheus metrics of the operator: runs, errors, jobs by phase, run duration.

Updated by ``stack.py``; served on ``settings.metrics_port`` by ``prometheus_client``'s own HTTP
server (``serve``), started by the startup handler. Must not: carry names of secrets or keys.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RUNS = Counter(
    "tunekeeper_reconciles_total",
    "Reconcile runs of a namespace (each observes its accounts once).",
    ["namespace"],
)
ERRORS = Counter(
    "tunekeeper_reconcile_errors_total",
    "Resources a run reported as failed, by kind and error type "
    "(invalid: spec, data or credentials; permanent: the cloud refused; transient: retried).",
    ["namespace", "kind", "type"],
)
JOBS = Gauge(
    "tunekeeper_jobs",
    "FineTuneJob resources by the phase of their Azure job (none: not created yet).",
    ["namespace", "phase"],
)
RUN_SECONDS = Histogram(
    "tunekeeper_reconcile_seconds",
    "Duration of a namespace's reconcile run.",
    ["namespace"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

PHASES = ("none", "validating_files", "queued", "running", "succeeded", "failed", "cancelled", "other")


def record_jobs(namespace: str, statuses: Iterable[str | None]) -> None:
    """Set the jobs-by-phase gauge of a namespace from the job statuses of its FineTuneJobs."""
    counts = dict.fromkeys(PHASES, 0)
    for status in statuses:
        phase = status or "none"
        counts[phase if phase in counts else "other"] += 1
    for phase, count in counts.items():
        JOBS.labels(namespace, phase).set(count)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` (all interfaces: the pod's port is what the chart exposes)."""
    start_http_server(port)
