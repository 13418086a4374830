"""Where a CLI run sends its requests: the Accounts in the manifests, or the embedded emulator.

``plan``, ``apply``, ``status``, ``chat`` and ``results`` call ``open_target(desired)``. With one
or more ``Account`` resources, each is connected through ``tunekeeper.cloud.connect``. With
none, an emulator is started in this process on ``127.0.0.1`` (a free port), its state kept
under ``<root>/.tunekeeper/emulator`` so it survives between commands, and reached through the
very same cloud implementation as Azure — an ``AccountSpec`` named ``embedded`` whose data-plane
and management endpoints are the emulator's URL. It is stopped when the command ends.

Environment (for demos and tests, never needed in normal use):
``TUNEKEEPER_EMULATOR_SPEED`` — how many times faster than Azure simulated work runs;
``TUNEKEEPER_EMULATOR_FAULTS`` — a faults file (see ``tunekeeper emulator --faults``) to inject
429s, 5xx and slow answers into the embedded emulator;
``TUNEKEEPER_EMULATE=1`` — rehearse a repository that declares Accounts: the embedded emulator
serves every declared Account (same subscription, resource group and account name, so ARM ids
such as a deployment's model source are the real ones) and nothing is sent to Azure.

This module owns connections only; it decides nothing about what to change.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tunekeeper.cloud import Cloud, CloudSettings, connect
from tunekeeper.errors import TunekeeperError
from tunekeeper.localfiles import own_folder
from tunekeeper.reconcile.state import state_dir  # where the CLI keeps what it learned
from tunekeeper.resources.specs import AccountSpec, AuthSpec, Desired, SourceRef

if TYPE_CHECKING:
    from tunekeeper.emulator import Emulator

EMBEDDED_ACCOUNT = "embedded"
SPEED_ENV = "TUNEKEEPER_EMULATOR_SPEED"
EMULATE_ENV = "TUNEKEEPER_EMULATE"
FAULTS_ENV = "TUNEKEEPER_EMULATOR_FAULTS"
# Simulated work runs this many times faster than on Azure: a small job (queue, validation, three
# epochs, storing the model: about 5 minutes there) and a fine-tuned deployment (about 2 minutes)
# take seconds, so `apply --wait` on the Clippy example finishes well under a minute while its
# progress bars still show every stage.
DEFAULT_SPEED = 60.0
# The emulator answers in milliseconds: poll long-running ARM operations and wait out a busy
# account in fractions of a second rather than Azure's seconds.
EMBEDDED_SETTINGS = CloudSettings(polling_interval=0.2, conflict_initial_delay=0.2, conflict_max_delay=2.0)


def emulator_dir(root: Path) -> Path:
    return own_folder(state_dir(root), "emulator")


@dataclass(frozen=True, slots=True)
class Target:
    """The accounts of one run, connected. ``desired`` names every account it uses."""

    desired: Desired  # with the embedded Account filled in when the manifests hold none
    clouds: Mapping[str, Cloud]  # account name -> connected cloud
    emulator: Emulator | None  # the embedded emulator, when there is one

    @property
    def embedded(self) -> bool:
        return self.emulator is not None


def emulator_speed() -> float:
    text = os.environ.get(SPEED_ENV, "").strip()
    if not text:
        return DEFAULT_SPEED
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not speed > 0:
        raise TunekeeperError(f"{SPEED_ENV}={text!r} is not a positive number",
                              hint=f"unset it, or set e.g. {SPEED_ENV}=60")
    return speed


def _faults_file() -> Path | None:
    text = os.environ.get(FAULTS_ENV, "").strip()
    if not text:
        return None
    path = Path(text)
    if not path.is_file():
        raise TunekeeperError(f"{FAULTS_ENV} names {text!r}, which is not a file",
                              hint="point it at a faults YAML file, or unset it")
    return path


def emulating() -> bool:
    """Does ``TUNEKEEPER_EMULATE`` ask to serve the declared Accounts from the embedded emulator?"""
    text = os.environ.get(EMULATE_ENV, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise TunekeeperError(f"{EMULATE_ENV}={text!r} is not 1 or 0",
                          hint=f"set {EMULATE_ENV}=1 to rehearse offline")


def start_embedded(root: Path, accounts: tuple[AccountSpec, ...] = ()) -> Emulator:
    """Start the embedded emulator for ``root`` (state under .tunekeeper/emulator), serving
    ``accounts`` besides its default one; the caller stops it."""
    from tunekeeper.emulator import Emulator, EmulatorConfig
    from tunekeeper.emulator.context import AccountConfig

    by_name: dict[str, AccountSpec] = {}
    for spec in accounts:
        clash = by_name.setdefault(spec.account_name.lower(), spec)
        if clash is not spec and (clash.subscription_id, clash.resource_group) != (spec.subscription_id,
                                                                                   spec.resource_group):
            raise TunekeeperError(f"Accounts {clash.name} and {spec.name} have the same accountName "
                                  f"{spec.account_name!r}; the emulator cannot serve both",
                                  hint="Azure OpenAI account names are globally unique: give each its own")
    # A fresh key per run: the emulator checks it like Azure does, and nothing else can guess it.
    config = EmulatorConfig(
        api_key=secrets.token_urlsafe(24), speed=emulator_speed(), data_dir=emulator_dir(root),
        accounts=tuple(AccountConfig(a.account_name, a.subscription_id, a.resource_group)
                       for a in by_name.values()),
    )
    try:
        emulator = Emulator(host="127.0.0.1", port=0, faults_file=_faults_file(), config=config)
    except ValueError as exc:  # an account name the emulator's data dir knows under another identity
        raise TunekeeperError(f"The embedded emulator cannot serve these Accounts: {exc}",
                              hint=f"delete {emulator_dir(root)} to start the rehearsal afresh") from None
    emulator.start()
    return emulator


def emulated_account(emulator: Emulator, spec: AccountSpec) -> AccountSpec:
    """``spec`` (name and ARM identity unchanged) reached at its account on the embedded emulator."""
    return replace(spec, endpoint=emulator.account_url(spec.account_name), management_endpoint=emulator.url,
                   auth=AuthSpec(kind="apiKey"))


def embedded_account(emulator: Emulator) -> AccountSpec:
    """The Account that reaches ``emulator`` through the ordinary Azure cloud implementation."""
    config = emulator.config
    return AccountSpec(
        name=EMBEDDED_ACCOUNT,
        endpoint=emulator.url,
        subscription_id=config.subscription_id,
        resource_group=config.resource_group,
        account_name=config.account_name,
        management_endpoint=emulator.url,
        auth=AuthSpec(kind="apiKey"),
        source=SourceRef("<embedded>"),
    )


@asynccontextmanager
async def open_target(desired: Desired) -> AsyncIterator[Target]:
    """Connect every account of ``desired`` (or the embedded emulator); close them all on exit."""
    emulator: Emulator | None = None
    clouds: dict[str, Cloud] = {}
    try:
        # Large files go up in parts, recorded here so that a rerun resumes an interrupted upload.
        records = own_folder(state_dir(desired.root), "uploads")
        if desired.accounts and emulating():
            emulator = start_embedded(desired.root, desired.accounts)
            specs = tuple(emulated_account(emulator, spec) for spec in desired.accounts)
            settings = replace(EMBEDDED_SETTINGS, upload_records=records)
            for spec in specs:
                clouds[spec.name] = await connect(spec, api_key=emulator.config.api_key, settings=settings)
            desired = replace(desired, accounts=specs)
        elif desired.accounts:
            # connect sends nothing yet; one at a time so a failure closes the rest
            for spec in desired.accounts:
                clouds[spec.name] = await connect(spec, settings=CloudSettings(upload_records=records))
        else:
            emulator = start_embedded(desired.root)
            account = embedded_account(emulator)
            settings = replace(EMBEDDED_SETTINGS, upload_records=records)
            cloud = await connect(account, api_key=emulator.config.api_key, settings=settings)
            clouds = {account.name: cloud}
            desired = replace(desired, accounts=(account,))
        yield Target(desired=desired, clouds=clouds, emulator=emulator)
    finally:
        for connected in clouds.values():
            await connected.close()
        if emulator is not None:
            emulator.stop()
