"""Telling a saved plan from manifests reads nothing past the size a plan can have."""

from __future__ import annotations

from pathlib import Path

from tunekeeper.reconcile.saved import MAX_PLAN_BYTES, is_plan_file


def test_a_file_larger_than_any_plan_is_not_read_as_one(tmp_path: Path) -> None:
    document = b'{"tunekeeper_plan": "tunekeeper-plan/1"}' + b" " * 1000
    plan = tmp_path / "plan.json"
    plan.write_bytes(document)
    assert is_plan_file(plan)
    assert not is_plan_file(plan, limit=len(document) - 1)  # the size decides before a byte is read
    assert MAX_PLAN_BYTES >= 64 * 1024 * 1024  # room for plans of thousands of resources


def test_fifos_and_folders_are_no_plans(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "fifo.json")
    assert not is_plan_file(tmp_path / "fifo.json")
    assert not is_plan_file(tmp_path)
