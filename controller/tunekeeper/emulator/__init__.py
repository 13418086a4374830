"""A local emulator of Azure OpenAI fine-tuning: the data plane (files, jobs, models, chat) and
ARM deployments, on one HTTP port.

Public names: ``Emulator`` (the threaded server; see server.py) and ``EmulatorConfig``. Callers:
tests, the CLI (``tunekeeper emulator`` and the embedded default target). Nothing in this package
imports the controller layers (cli, reconcile, cloud, resources); it uses only the dataset rules.
"""

from tunekeeper.emulator.context import EmulatorConfig
from tunekeeper.emulator.server import Emulator

__all__ = ["Emulator", "EmulatorConfig"]
