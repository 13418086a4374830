"""The operator's settings: one typed value, read once at startup and passed down.

``tunekeeper-operator`` fills it from its options; under ``kopf run -m tunekeeper.operator.handlers``
(and in tests) it comes from the environment (``OperatorSettings.from_env``), which is also how the
Helm chart sets it. Must not: read anything but the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tunekeeper.cloud import CloudSettings

ENV_DATA_DIR = "TUNEKEEPER_DATA_DIR"
ENV_CLUSTER = "TUNEKEEPER_CLUSTER_NAME"
ENV_INTERVAL = "TUNEKEEPER_INTERVAL"
ENV_METRICS_PORT = "TUNEKEEPER_METRICS_PORT"
ENV_FAST_CLOUD = "TUNEKEEPER_FAST_CLOUD"  # short polling for an emulator (tests, demos)
DEFAULT_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    data_dir: Path  # per namespace <data_dir>/<namespace>/: data files, and ConfigMap data written there
    cluster_name: str = "default"  # names this cluster in the markers, so clusters sharing an account differ
    interval: float = DEFAULT_INTERVAL  # seconds between two looks at a resource (timer)
    metrics_port: int | None = None  # Prometheus /metrics; None: not served
    poll_interval: float = 2.0  # converge's pause between its own retries of a transient error
    cloud: CloudSettings = field(default_factory=CloudSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        port = env.get(ENV_METRICS_PORT, "").strip()
        fast = env.get(ENV_FAST_CLOUD, "").strip().lower() in ("1", "true", "yes")
        return cls(
            data_dir=Path(env.get(ENV_DATA_DIR, "/var/lib/tunekeeper/data")),
            cluster_name=env.get(ENV_CLUSTER, "default").strip() or "default",
            interval=float(env.get(ENV_INTERVAL, "") or DEFAULT_INTERVAL),
            metrics_port=int(port) if port else None,
            poll_interval=0.2 if fast else 2.0,
            cloud=CloudSettings(polling_interval=0.2, conflict_initial_delay=0.2, conflict_max_delay=2.0)
            if fast
            else CloudSettings(),
        )

    def namespace_dir(self, namespace: str) -> Path:
        return self.data_dir / namespace
