"""``tunekeeper-operator``: run the operator (the container image's entry point).

Parses options (click), then hands over to kopf with the handlers of ``tunekeeper.operator.handlers``.
Each replica draws a random peering priority unless one is given: kopf pauses every replica but
the one with the highest priority, so several replicas never work at once (and never create a
job twice). Must not: reconcile anything itself.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from pathlib import Path

import click

from tunekeeper.operator.settings import DEFAULT_INTERVAL, OperatorSettings


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NAMESPACE",
    help="Watch this namespace (repeatable; globs as kopf accepts them). Default: all namespaces.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TUNEKEEPER_DATA_DIR",
    default=Path("/var/lib/tunekeeper/data"),
    show_default=True,
    help="Training data: <data-dir>/<namespace>/ holds a namespace's files (a mounted volume); "
    "ConfigMap data is written under it too.",
)
@click.option(
    "--cluster-name",
    envvar="TUNEKEEPER_CLUSTER_NAME",
    default="default",
    show_default=True,
    help="Names this cluster in the markers on Azure objects: clusters sharing an account must differ.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    envvar="TUNEKEEPER_INTERVAL",
    default=DEFAULT_INTERVAL,
    show_default=True,
    help="Seconds between two looks at each resource (job progress, drift).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="TUNEKEEPER_METRICS_PORT",
    default=None,
    help="Serve Prometheus metrics on this port (/metrics).",
)
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="kopf's liveness endpoint (used by the liveness and readiness probes); '' to disable.",
)
@click.option(
    "--peering",
    default="tunekeeper",
    show_default=True,
    help="kopf peering object (KopfPeering in each watched namespace, ClusterKopfPeering for all).",
)
@click.option(
    "--standalone", is_flag=True, help="No peering: for a single replica without the peering objects."
)
@click.option("--priority", type=int, default=None, help="Peering priority (default: random per replica).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    namespaces: tuple[str, ...],
    data_dir: Path,
    cluster_name: str,
    interval: float,
    metrics_port: int | None,
    liveness: str,
    peering: str,
    standalone: bool,
    priority: int | None,
    verbose: bool,
) -> None:
    """Reconcile tunekeeper's Account, FineTuneJob and Deployment custom resources with Azure OpenAI."""
    import os

    import kopf

    # kopf fixes a timer's interval when the handlers are registered (on import): pass it on first
    os.environ["TUNEKEEPER_INTERVAL"] = str(interval)
    import tunekeeper.operator.handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = dataclasses.replace(
        OperatorSettings.from_env(),  # what has no option (the emulator's short polling) comes from there
        data_dir=data_dir,
        cluster_name=cluster_name,
        interval=interval,
        metrics_port=metrics_port,
    )
    kopf.run(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=standalone,
        peering_name=None if standalone else peering,
        priority=priority if priority is not None else 1 + secrets.randbelow(2**30),
        liveness_endpoint=liveness or None,
        memo=kopf.Memo(tunekeeper_settings=settings),
    )


if __name__ == "__main__":
    main()
