"""``tunekeeper emulator``: serve the Azure OpenAI emulator (data plane and ARM) until Ctrl-C.

Prints the endpoint, the environment variables the openai SDK reads (``AzureOpenAI()`` takes
``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY`` and ``OPENAI_API_VERSION``) plus those
``examples/sdk_walkthrough.py`` reads for ARM, and the Account manifest that points tunekeeper at
it (tunekeeper reads manifests, not these variables), then serves in the foreground.

The security model (docs/emulator.md): by default it binds 127.0.0.1 in open mode (any bearer
token, no credentials on the ``/_emulator`` admin routes). ``--api-key`` switches every route,
admin included, to requiring that key. ``--allow-remote`` is required for a non-loopback host,
and it requires ``--api-key``: a remote emulator is never open.

Thin adapter: argument parsing and printing only; the server is ``tunekeeper.emulator.Emulator``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from tunekeeper.errors import TunekeeperError
from tunekeeper.netaddr import is_loopback_host

if TYPE_CHECKING:
    from tunekeeper.emulator import Emulator

API_VERSION = "2025-04-01-preview"


@click.command("emulator")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default)."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep state in DIR/emulator.sqlite3 so it survives restarts (default: memory only).",
)
@click.option(
    "--api-key",
    default=None,
    envvar="TUNEKEEPER_EMULATOR_API_KEY",
    show_envvar=True,
    help="Require this key on every route (api-key header or Bearer token). Default: open mode "
    "with the key emulator-key, loopback only.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=float,
    help="Run simulated work (training, provisioning) this many times faster than Azure.",
)
@click.option(
    "--faults",
    "faults_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML/JSON file of fault rules to inject (429, 5xx, latency, dropped connections).",
)
@click.option(
    "--import-dir",
    "import_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder whose files may be imported with file:// URLs (repeatable; the data dir always may).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    metavar="[SUBSCRIPTION/RESOURCE_GROUP/]NAME",
    help="Serve one more Azure OpenAI account (repeatable), at URL/accounts/NAME and its own ARM path; "
    "default subscription and resource group: the default account's.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --host (needs --api-key: every route then requires it).",
)
def emulator(
    host: str,
    port: int,
    data_dir: Path | None,
    api_key: str | None,
    speed: float,
    faults_file: Path | None,
    import_dirs: tuple[Path, ...],
    accounts: tuple[str, ...],
    allow_remote: bool,
) -> None:
    """Serve the Azure OpenAI fine-tuning emulator until Ctrl-C."""
    from tunekeeper.emulator import Emulator, EmulatorConfig
    from tunekeeper.emulator.context import DEFAULT_API_KEY, AccountConfig

    if not is_loopback_host(host) and not allow_remote:
        raise click.UsageError(
            f"--host {host} is not a loopback address. Pass --allow-remote and --api-key to expose the "
            "emulator with every route (admin included) requiring that key."
        )
    if not is_loopback_host(host) and not api_key:
        raise click.UsageError(
            f"--host {host} with --allow-remote needs --api-key: a remote emulator is never open."
        )
    if not speed > 0 or speed == float("inf"):
        raise click.BadParameter("must be a finite number greater than 0", param_hint="--speed")
    if api_key is not None and not api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="--api-key")
    extra: list[AccountConfig] = []
    for text in accounts:
        parts = text.split("/")
        if len(parts) not in (1, 3):
            raise click.BadParameter(
                f"{text!r}: write NAME or SUBSCRIPTION/RESOURCE_GROUP/NAME", param_hint="--account"
            )
        defaults = EmulatorConfig()
        sub, rg, name = (
            parts if len(parts) == 3 else (defaults.subscription_id, defaults.resource_group, parts[0])
        )
        try:
            extra.append(AccountConfig(name, sub, rg))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--account") from None
    config = EmulatorConfig(
        api_key=api_key or DEFAULT_API_KEY,
        require_auth=api_key is not None,
        speed=speed,
        data_dir=data_dir,
        import_dirs=tuple(p.resolve() for p in import_dirs),
        accounts=tuple(extra),
    )
    try:
        server = Emulator(host=host, port=port, faults_file=faults_file, config=config)
        server.start()
    except TunekeeperError as exc:
        diagnostics = getattr(exc, "diagnostics", ())
        for diagnostic in diagnostics:  # a bad --faults file: every problem with file and line
            click.echo(diagnostic.render(), err=True)
        if not diagnostics:
            click.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"  hint: {exc.hint}", err=True)
        sys.exit(1)
    except ValueError as exc:  # two --account with one name
        raise click.BadParameter(str(exc), param_hint="--account") from None
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        click.echo("  hint: pick another --port, or 0 for a free one", err=True)
        sys.exit(1)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        _print_environment(server, custom_key=api_key is not None)
        server.run_forever()
    except KeyboardInterrupt:  # Ctrl-C before serving began
        server.stop()
    click.echo("tunekeeper emulator stopped.")


def _print_environment(server: Emulator, *, custom_key: bool) -> None:
    c = server.config
    state = f"in {Path(c.data_dir) / 'emulator.sqlite3'}" if c.data_dir else "in memory"
    mode = "every route needs the api key" if c.require_auth else "open mode: loopback only, any bearer token"
    key = "<the --api-key you chose>" if custom_key else c.api_key
    click.echo(f"tunekeeper emulator listening on {server.url} (speed x{c.speed:g}, state {state}; {mode})")
    click.echo(
        "The openai SDK (AzureOpenAI()) reads the first three; examples/sdk_walkthrough.py reads them all:"
    )
    click.echo(f"  export AZURE_OPENAI_ENDPOINT={server.url}")
    click.echo(f"  export AZURE_OPENAI_API_KEY={key}")
    click.echo(f"  export OPENAI_API_VERSION={API_VERSION}")
    click.echo(f"  export AZURE_ARM_BASE_URL={server.url}")
    click.echo(f"  export AZURE_SUBSCRIPTION_ID={c.subscription_id}")
    click.echo(f"  export AZURE_RESOURCE_GROUP={c.resource_group}")
    click.echo(f"  export AZURE_OPENAI_ACCOUNT={c.account_name}")
    if c.require_auth:
        click.echo("  export TEMP_AUTH_TOKEN=<the --api-key you chose>   # ARM's bearer token is the key too")
    others = [a for a in server.accounts if not a.default]
    if others:
        click.echo("More accounts (same key; data-plane endpoint, then ARM id):")
        for account in others:
            click.echo(f"  {server.url}{account.endpoint_path}  {account.resource_id}")
    click.echo("tunekeeper reads manifests, not these variables: add this Account to point it here")
    click.echo("(with AZURE_OPENAI_API_KEY exported as above):")
    for line in (
        "  apiVersion: tunekeeper.io/v1alpha1",
        "  kind: Account",
        "  metadata: {name: emulator}",
        "  spec:",
        f"    endpoint: {server.url}",
        f"    managementEndpoint: {server.url}",
        f"    subscriptionId: {c.subscription_id}",
        f"    resourceGroup: {c.resource_group}",
        f"    accountName: {c.account_name}",
        "    auth: {apiKeyFromEnv: AZURE_OPENAI_API_KEY}",
    ):
        click.echo(line)
    click.echo("Press Ctrl-C to stop.")
