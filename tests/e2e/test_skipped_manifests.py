"""A manifest that cannot be read stops plan and apply: without it the stack's desired state is unknown,
and pruning would delete what it declares.

Given an applied project, when a manifest folder also holds a file that is refused (a FIFO, a link
out of the repository), then plan and apply exit 1 naming the file and change nothing; validate
reports it as a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .cli_helpers import inventory, run, write_project


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_plan_and_apply_refuse_when_a_manifest_was_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = write_project(tmp_path / "repo")
    monkeypatch.chdir(project)
    assert run("apply", ".", "--wait", "--timeout", "120").exit_code == 0
    before = inventory(project)
    os.mkfifo(project / "more.yaml")
    outside = tmp_path / "outside.yaml"
    outside.write_text("kind: Deployment\n")
    (project / "linked.yaml").symlink_to(outside)
    for command in ("plan", "apply"):
        refused = run(command, ".")
        assert refused.exit_code == 1, refused
        assert "could not be read" in refused.stderr and "more.yaml" in refused.stderr
        assert "linked.yaml" in refused.stderr
    assert inventory(project) == before
    checked = run("validate", ".")
    assert "skipped: is not a regular file (it is a FIFO)" in checked.stderr
