"""The per-owner, per-account lock of apply and gc: who holds it, stale locks, and the moment of creation."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tunekeeper.reconcile.lock import LockHeld, hold, lock_path

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with (
        hold(tmp_path, "abc", ["prod"], command="apply", now=NOW),
        pytest.raises(LockHeld, match=f"pid {os.getpid()}"),
        hold(tmp_path, "abc", ["prod"], command="apply", now=NOW),
    ):
        pass
    assert not lock_path(tmp_path, "abc", "prod").exists()


def test_a_lock_file_still_being_written_is_held_not_stale(tmp_path: Path) -> None:
    """Between its creation and its first write a lock file is empty: another run must not take it over."""
    path = lock_path(tmp_path, "abc", "prod")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # a run has just created it
    with pytest.raises(LockHeld, match="being taken"), hold(tmp_path, "abc", ["prod"], command="apply",
                                                           now=datetime.now(UTC)):
        pass
    assert path.exists()


def test_an_unreadable_lock_file_left_behind_long_ago_is_taken_over(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "abc", "prod")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{half")
    old = (datetime.now(UTC) - timedelta(minutes=5)).timestamp()
    os.utime(path, (old, old))
    warned: list[str] = []
    with hold(tmp_path, "abc", ["prod"], command="apply", warn=warned.append, now=datetime.now(UTC)):
        assert b'"pid"' in path.read_bytes()
    assert warned and "unreadable" in warned[0]


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "abc", "prod")
    path.parent.mkdir(parents=True)
    path.write_text(f'{{"pid": 999999999, "host": "{socket.gethostname()}", "since": "{NOW.isoformat()}"}}')
    warned: list[str] = []
    with hold(tmp_path, "abc", ["prod"], command="apply", warn=warned.append, now=NOW):
        pass
    assert warned and "stale" in warned[0]
