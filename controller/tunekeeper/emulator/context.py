"""What every part of the emulator shares: configuration, store, clock and fault rules.

One ``EmulatorContext`` per running emulator; route handlers get it from the aiohttp app
(``request.app[CONTEXT]``). The emulator models exactly one Azure OpenAI resource: its data
plane under ``/openai`` and its ARM identity (subscription, resource group, account name);
ARM requests for any other account get Azure's ResourceNotFound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from tunekeeper.emulator.clock import Clock
from tunekeeper.emulator.store import Store

if TYPE_CHECKING:
    from tunekeeper.emulator.faults import Faults

DEFAULT_API_KEY = "emulator-key"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_RESOURCE_GROUP = "tunekeeper"
DEFAULT_ACCOUNT = "emulator"

DATAPLANE_API_VERSIONS = ("2024-10-21", "2025-04-01-preview")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    api_key: str = DEFAULT_API_KEY
    subscription_id: str = DEFAULT_SUBSCRIPTION
    resource_group: str = DEFAULT_RESOURCE_GROUP
    account_name: str = DEFAULT_ACCOUNT
    region: str = "swedencentral"
    speed: float = 1.0  # simulated work takes (its Azure duration / speed) seconds
    data_dir: Path | None = None  # None: state in memory only
    # Folders besides the data dir that ``POST /openai/files/import`` may read ``file://`` URLs from.
    import_dirs: tuple[Path, ...] = ()
    # Azure OpenAI's published per-resource fine-tuning limits (quotas-limits page).
    max_fine_tune_files: int = 50  # files with purpose fine-tune
    max_fine_tune_bytes: int = 1024**3  # their total size
    max_jobs: int = 100  # fine-tuning jobs kept by the resource (deleted ones do not count)
    max_active_jobs: int = 21  # one running plus twenty queued
    # Tokens-per-minute quota (in capacity units of 1K TPM) per SKU for this account.
    quota: dict[str, int] = field(default_factory=lambda: {
        "Standard": 300, "GlobalStandard": 1000, "DataZoneStandard": 500, "Developer": 100,
        "ProvisionedManaged": 100, "GlobalProvisionedManaged": 100, "DataZoneProvisionedManaged": 100,
    })


@dataclass(slots=True)
class EmulatorContext:
    config: EmulatorConfig
    store: Store
    clock: Clock
    faults: Faults


CONTEXT: web.AppKey[EmulatorContext] = web.AppKey("tunekeeper_emulator_context", EmulatorContext)
