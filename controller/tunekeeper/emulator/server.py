"""The emulator as a running server: an aiohttp app on its own event loop in a background thread.

Used three ways: by tests (``Emulator(port=0).start()`` in a session fixture), by the CLI's
embedded default, and by ``tunekeeper emulator`` (``run_forever``). ``start()`` returns once the
socket listens, so ``.url`` is usable at once; ``stop()`` closes the server and the store.

One server serves several accounts (Azure OpenAI resources): the default one of the config at
the root URL, and more (``config.accounts``, ``add_account``, or ``POST /_emulator/accounts``)
each at ``{url}/accounts/{name}`` for the data plane and under its own ARM path. Each account
keeps its state in its own SQLite file (``data_dir/emulator.sqlite3`` for the default one,
``data_dir/accounts/{name}.sqlite3`` for the others, or memory without a data dir); the list of
accounts is kept in the default one, so a restart on the same data dir serves them all again.
Nothing
about jobs or deployments is held only in this process, which is why a restarted emulator on
the same data dir carries on where the last one stopped. This module must not contain route
logic: that is app.py and the plane modules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from tunekeeper.emulator import admin
from tunekeeper.emulator.app import build_app
from tunekeeper.emulator.clock import Clock
from tunekeeper.emulator.context import (
    DEFAULT_API_KEY,
    AccountConfig,
    Accounts,
    EmulatorConfig,
    EmulatorContext,
)
from tunekeeper.emulator.faults import Faults
from tunekeeper.emulator.store import Store

DATABASE_NAME = "emulator.sqlite3"
IDLE_CONNECTION_SECONDS = (
    30.0  # a connection with no complete request for this long is closed (half-sent headers)
)
SHUTDOWN_SECONDS = 3.0  # requests still running at stop() (a slow fault, an upload) are cancelled after this
ACCOUNTS_DIR = "accounts"
ACCOUNTS_META = "accounts"  # the default store's list of the other accounts (persisted)


class Emulator:
    """One emulated Azure OpenAI resource (data plane + ARM) served over HTTP.

    ``config`` (when given) wins over ``api_key`` and ``speed``; ``data_dir`` overrides the
    config's. ``faults_file`` rules are loaded before the server starts (a bad file raises
    ManifestError naming file and line).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: Path | None = None,
        api_key: str = DEFAULT_API_KEY,
        speed: float = 1.0,
        faults_file: Path | None = None,
        config: EmulatorConfig | None = None,
    ) -> None:
        if config is None:
            config = EmulatorConfig(api_key=api_key, speed=speed, data_dir=data_dir)
        elif data_dir is not None:
            config = dataclasses.replace(config, data_dir=data_dir)
        self.config = config
        self.host = host
        self.port = port
        database = None if config.data_dir is None else Path(config.data_dir) / DATABASE_NAME
        self.store = Store(database)
        self.clock = Clock(self.store, speed=config.speed)
        self.faults = Faults.load(faults_file) if faults_file is not None else Faults()
        self.context = EmulatorContext(config=config, store=self.store, clock=self.clock, faults=self.faults)
        self.accounts = Accounts()
        self.accounts.register(self.context)
        self.accounts.factory = self._open_account
        persisted = [
            AccountConfig(a["accountName"], a["subscriptionId"], a["resourceGroup"], a["region"])
            for a in self.store.get_meta(ACCOUNTS_META, [])
        ]
        for account in (*config.accounts, *persisted):
            self.accounts.add(account)
        self.app = build_app(self.context)
        # a reset empties every store, the default one's list of accounts included: write it again
        hooks: list[Callable[[], None]] = [self._persist_accounts]
        self.app[admin.RESET_HOOKS] = hooks
        self._reset_hooks: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = threading.Event()

    # -- accounts ---------------------------------------------------------------------------
    def add_account(
        self,
        account_name: str,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        region: str | None = None,
    ) -> EmulatorContext:
        """Serve one more account (kept across restarts on the same data dir); returns its context.

        Defaults are the default account's subscription, resource group and region. Adding an
        account that exists with the same identity returns it; a name taken by another identity
        raises ValueError (account names are unique, like Azure's custom subdomains).
        """
        c = self.config
        return self.accounts.add(
            AccountConfig(
                account_name,
                subscription_id or c.subscription_id,
                resource_group or c.resource_group,
                region or c.region,
            )
        )

    def account(self, name: str) -> EmulatorContext:
        """The context of an account by name (KeyError when the emulator has none of that name)."""
        found = self.accounts.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def account_url(self, name: str) -> str:
        """The data-plane endpoint of an account (``azure_endpoint`` for openai)."""
        return self.url + self.account(name).endpoint_path

    def _open_account(self, account: AccountConfig) -> EmulatorContext:
        config = dataclasses.replace(
            self.config,
            account_name=account.account_name,
            subscription_id=account.subscription_id,
            resource_group=account.resource_group,
            region=account.region,
            accounts=(),
        )
        data_dir = self.config.data_dir
        database = (
            None
            if data_dir is None
            else Path(data_dir) / ACCOUNTS_DIR / f"{account.account_name.lower()}.sqlite3"
        )
        ctx = EmulatorContext(
            config=config, store=Store(database), clock=self.clock, faults=self.faults, default=False
        )
        self._persist_accounts(extra=account)
        return ctx

    def _persist_accounts(self, extra: AccountConfig | None = None) -> None:
        known = [c.config.identity() for c in self.accounts if not c.default]
        if extra is not None and extra not in known:
            known.append(extra)
        self.store.set_meta(ACCOUNTS_META, [a.to_dict() for a in known])

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Serve from a background thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        failure: list[Exception] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except Exception as exc:  # noqa: BLE001 -- e.g. the port is taken: re-raised by start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()
                self._stopped.set()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="tunekeeper-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            self._loop = None
            raise failure[0]
        return self

    async def _listen(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_SECONDS,
            keepalive_timeout=IDLE_CONNECTION_SECONDS,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses  # the bound sockets' names: (host, port, ...)
        if addresses:
            self.port = int(addresses[0][1])

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        """Stop serving and close the store. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        self._loop = None
        self._thread = None
        for ctx in self.accounts:
            ctx.store.close()

    def run_forever(self) -> None:
        """Serve until interrupted (Ctrl-C); used by ``tunekeeper emulator``."""
        if self._thread is None:
            self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def reset(self) -> None:
        """Forget every object of every account, the clock offset and every fault rule (the
        accounts themselves stay)."""
        admin.reset_state(self.app)

    def fail_job(
        self, job_id: str, message: str = "The training run was interrupted by an internal error."
    ) -> None:
        """Make a pending or running fine-tuning job fail now (tests of failure handling).

        Raises KeyError for an unknown job and ValueError for a finished one.
        """
        from tunekeeper.emulator.dataplane.jobs import inject_failure

        inject_failure(self.context, job_id, message)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL: ``azure_endpoint`` for openai and ``base_url`` for the ARM client."""
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"http://{host}:{self.port}"

    @property
    def arm_account_path(self) -> str:
        c = self.config
        return (
            f"/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{c.account_name}"
        )
