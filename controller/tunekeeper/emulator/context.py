"""What every part of the emulator shares: configuration, store, clock and fault rules.

One ``EmulatorContext`` per emulated Azure OpenAI resource (an "account"): its configuration
(the ARM identity: subscription, resource group, account name, region), its own store, and the
clock and fault rules that every account of the server shares. The aiohttp app holds the
default account's context (``request.app[CONTEXT]``); ``Accounts`` (reached from any context as
``ctx.accounts``) finds the others, by account name (the data plane: ``/accounts/{name}/openai``)
or by ARM identity. ARM requests for an account that is not there get Azure's ResourceNotFound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


# ARM's rule for Microsoft.CognitiveServices account names (2-64 characters).
ACCOUNT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
# An account's ARM resource id, as ``properties.model.source`` of a deployment names it.
ACCOUNT_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.CognitiveServices/"
    r"accounts/(?P<account>[^/]+)/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One more emulated Azure OpenAI resource, besides the default one of ``EmulatorConfig``."""

    account_name: str
    subscription_id: str = DEFAULT_SUBSCRIPTION
    resource_group: str = DEFAULT_RESOURCE_GROUP
    region: str = "swedencentral"

    def __post_init__(self) -> None:
        if not ACCOUNT_NAME.match(self.account_name):
            raise ValueError(
                f"account name {self.account_name!r} must be 2-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        for label, value in (
            ("subscription", self.subscription_id),
            ("resource group", self.resource_group),
            ("region", self.region),
        ):
            if not value or "/" in value:
                raise ValueError(f"{label} {value!r} must be a non-empty name without '/'")

    def to_dict(self) -> dict[str, str]:
        return {
            "accountName": self.account_name,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "region": self.region,
        }


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    api_key: str = DEFAULT_API_KEY
    # False (open, loopback only): the data plane takes the api-key or any bearer token, ARM any
    # bearer token, the /_emulator admin routes nothing. True (what `tunekeeper emulator --api-key`
    # and --allow-remote set): every route, admin included, needs `api-key: KEY` or `Bearer KEY`.
    require_auth: bool = False
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
    # More accounts served by the same server, each with its own state, data-plane endpoint
    # (``/accounts/{name}``) and ARM path. Accounts added at run time are persisted besides these.
    accounts: tuple[AccountConfig, ...] = ()
    # Tokens-per-minute quota (in capacity units of 1K TPM) per SKU for this account.
    quota: dict[str, int] = field(
        default_factory=lambda: {
            "Standard": 300,
            "GlobalStandard": 1000,
            "DataZoneStandard": 500,
            "Developer": 100,
            "ProvisionedManaged": 100,
            "GlobalProvisionedManaged": 100,
            "DataZoneProvisionedManaged": 100,
        }
    )

    def identity(self) -> AccountConfig:
        """The default account's identity."""
        return AccountConfig(self.account_name, self.subscription_id, self.resource_group, self.region)


@dataclass(slots=True)
class EmulatorContext:
    """One account: its config (identity included), its store; the clock and faults are shared."""

    config: EmulatorConfig
    store: Store
    clock: Clock
    faults: Faults
    accounts: Accounts = field(default_factory=lambda: Accounts())
    default: bool = True  # the account at the server's root URL (``/openai``)

    @property
    def resource_id(self) -> str:
        c = self.config
        return (
            f"/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{c.account_name}"
        )

    @property
    def endpoint_path(self) -> str:
        """The data-plane endpoint's path on this server: "" for the default account."""
        return "" if self.default else f"/accounts/{self.config.account_name}"


class Accounts:
    """Every account one server serves, by name (unique, compared case-insensitively like Azure's
    custom subdomains) and by ARM identity. ``add`` builds a new account's context through the
    factory the server installs (its store lives next to the default one)."""

    def __init__(self) -> None:
        self._by_name: dict[str, EmulatorContext] = {}
        self.factory: Callable[[AccountConfig], EmulatorContext] | None = None

    def register(self, ctx: EmulatorContext) -> None:
        ctx.accounts = self
        self._by_name[ctx.config.account_name.lower()] = ctx

    def add(self, account: AccountConfig) -> EmulatorContext:
        """The context of ``account``, created when new. Raises ValueError for a name already used
        by an account with another identity."""
        existing = self.get(account.account_name)
        if existing is not None:
            if existing is not self.find(
                account.subscription_id, account.resource_group, account.account_name
            ):
                raise ValueError(
                    f"an account named {account.account_name!r} already exists "
                    f"({existing.resource_id}); account names are unique on one emulator"
                )
            return existing
        if self.factory is None:
            raise RuntimeError("this emulator cannot add accounts")
        ctx = self.factory(account)
        self.register(ctx)
        return ctx

    def get(self, name: str) -> EmulatorContext | None:
        return self._by_name.get(name.lower())

    def __iter__(self) -> Iterator[EmulatorContext]:
        return iter(list(self._by_name.values()))

    def in_subscription(self, subscription: str, resource_group: str | None = None) -> list[EmulatorContext]:
        return [
            c
            for c in self
            if c.config.subscription_id.lower() == subscription.lower()
            and (resource_group is None or c.config.resource_group.lower() == resource_group.lower())
        ]

    def find(self, subscription: str, resource_group: str, name: str) -> EmulatorContext | None:
        return next(
            (
                c
                for c in self.in_subscription(subscription, resource_group)
                if c.config.account_name.lower() == name.lower()
            ),
            None,
        )

    def by_resource_id(self, resource_id: str) -> EmulatorContext | None:
        match = ACCOUNT_RESOURCE_ID.match(resource_id)
        return None if match is None else self.find(match["sub"], match["rg"], match["account"])


CONTEXT: web.AppKey[EmulatorContext] = web.AppKey("tunekeeper_emulator_context", EmulatorContext)
