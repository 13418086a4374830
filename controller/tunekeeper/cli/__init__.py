"""The ``tunekeeper`` command line: thin adapters over the core.

Each command lives in its own module under ``cli/`` and is imported only when invoked, so
``tunekeeper validate`` does not pay for the Azure SDKs. A command is load -> core -> render;
data goes to stdout, diagnostics to stderr. Exit codes: 0 success, 1 failure, 2 bad usage,
3 (``plan --detailed-exitcode``) changes pending.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

from tunekeeper import __version__

# command name -> "module:attribute" (module relative to tunekeeper.cli)
_COMMANDS: dict[str, str] = {
    "validate": "validate:validate",
    "emulator": "emulator:emulator",
    "plan": "reconcile:plan",
    "apply": "reconcile:apply",
    "gc": "reconcile:gc",
    "status": "reconcile:status",
    "chat": "reconcile:chat",
    "results": "reconcile:results",
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_available()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None or not _installed(spec):  # only the command asked for is looked up
            return super().get_command(ctx, cmd_name)
        module_name, attr = spec.split(":")
        module = importlib.import_module(f"tunekeeper.cli.{module_name}")
        command: click.Command = getattr(module, attr)
        return command


def _available() -> dict[str, str]:
    """Commands whose module exists in this installation."""
    return {name: spec for name, spec in _COMMANDS.items() if _installed(spec)}


def _installed(spec: str) -> bool:
    """Does the module of a command ("module:attribute") exist in this installation?"""
    return importlib.util.find_spec(f"tunekeeper.cli.{spec.split(':')[0]}") is not None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="tunekeeper")
def main(**_: Any) -> None:
    """Fine-tuning on Azure OpenAI, managed as code."""
