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
429s, 5xx and slow answers into the embedded emulator.

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
from tunekeeper.reconcile.state import STATE_DIR
from tunekeeper.resources.specs import AccountSpec, AuthSpec, Desired, SourceRef

if TYPE_CHECKING:
    from tunekeeper.emulator import Emulator

EMBEDDED_ACCOUNT = "embedded"
SPEED_ENV = "TUNEKEEPER_EMULATOR_SPEED"
FAULTS_ENV = "TUNEKEEPER_EMULATOR_FAULTS"
# Simulated work runs this many times faster than on Azure: a small job (queue, validation, three
# epochs, storing the model: about 5 minutes there) and a fine-tuned deployment (about 2 minutes)
# take seconds, so `apply --wait` on the Clippy example finishes well under a minute while its
# progress bars still show every stage.
DEFAULT_SPEED = 60.0
# The emulator answers in milliseconds: poll long-running ARM operations and wait out a busy
# account in fractions of a second rather than Azure's seconds.
EMBEDDED_SETTINGS = CloudSettings(polling_interval=0.2, conflict_initial_delay=0.2, conflict_max_delay=2.0)


def state_dir(root: Path) -> Path:
    """Where the CLI keeps what it learned (state file, embedded emulator) for one repository."""
    return root / STATE_DIR


def emulator_dir(root: Path) -> Path:
    return state_dir(root) / "emulator"


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


def start_embedded(root: Path) -> Emulator:
    """Start the embedded emulator for ``root`` (state under .tunekeeper/emulator); caller stops it."""
    from tunekeeper.emulator import Emulator

    # A fresh key per run: the emulator checks it like Azure does, and nothing else can guess it.
    emulator = Emulator(
        host="127.0.0.1",
        port=0,
        data_dir=emulator_dir(root),
        api_key=secrets.token_urlsafe(24),
        speed=emulator_speed(),
        faults_file=_faults_file(),
    )
    emulator.start()
    return emulator


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
        records = state_dir(desired.root) / "uploads"
        if desired.accounts:
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
