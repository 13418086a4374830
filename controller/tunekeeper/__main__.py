"""``python -m tunekeeper`` runs the CLI."""

from tunekeeper.cli import main

main()
