"""The files tunekeeper keeps in ``.tunekeeper/`` are read as untrusted: a checkout can carry links,
FIFOs and huge files there. Each reads as absent; the folder may not lead out of the repository."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from tunekeeper.errors import TunekeeperError
from tunekeeper.localfiles import own_folder, read_own_file
from tunekeeper.reconcile.lock import lock_path, read_holder
from tunekeeper.reconcile.state import STATE_NAME, StateFile, state_dir


def test_a_regular_file_is_read_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"x" * 100)
    assert read_own_file(path, 100) == b"x" * 100
    assert read_own_file(path, 99) is None  # one byte over: not ours
    assert read_own_file(tmp_path / "missing", 100) is None


def test_links_are_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_bytes(b"{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert read_own_file(link, 1 << 20) is None
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")  # a plain read would never end
    assert read_own_file(zero, 1 << 20) is None


@pytest.mark.timeout(10)
def test_a_fifo_reads_as_absent_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)  # no writer: a blocking open would wait for ever
    assert read_own_file(fifo, 1 << 20) is None


def test_the_state_file_ignores_a_link_to_a_valid_state(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(orjson.dumps({"format": 2, "resources": {"FineTuneJob/bot": {"job_id": "ftjob-1"}},
                                        "jobs": {}, "evals": {}}))
    assert StateFile(elsewhere).known().jobs == {"bot": "ftjob-1"}  # the file itself is read
    root = tmp_path / "repo"
    (root / ".tunekeeper").mkdir(parents=True)
    (root / ".tunekeeper" / STATE_NAME).symlink_to(elsewhere)
    assert StateFile.for_root(root).known().jobs == {}  # through a link: absent


def test_a_lock_file_that_is_a_link_names_no_holder(tmp_path: Path) -> None:
    path = lock_path(tmp_path / ".tunekeeper", "owner", "dev")
    path.parent.mkdir(parents=True)
    real = tmp_path / "real.lock"
    real.write_bytes(orjson.dumps({"pid": 1, "host": "h", "since": "2026-01-01T00:00:00+00:00"}))
    assert read_holder(real) is not None
    path.symlink_to(real)
    assert read_holder(path) is None


def test_the_state_folder_may_not_lead_out_of_the_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    assert state_dir(root) == root / ".tunekeeper"  # not there yet: fine, it is made when needed
    (root / "cache").mkdir()
    (root / ".tunekeeper").symlink_to(root / "cache")
    assert state_dir(root) == root / ".tunekeeper"  # a link inside the repository is fine
    (root / ".tunekeeper").unlink()
    (tmp_path / "outside").mkdir()
    (root / ".tunekeeper").symlink_to(tmp_path / "outside")
    with pytest.raises(TunekeeperError, match="outside the repository") as refused:
        state_dir(root)
    assert refused.value.hint and "remove the link" in refused.value.hint
    with pytest.raises(TunekeeperError, match="outside the repository"):
        StateFile.for_root(root)
    (root / ".tunekeeper").unlink()
    (root / ".tunekeeper").write_text("not a folder")
    with pytest.raises(TunekeeperError, match="is not a folder"):
        state_dir(root)
    (root / ".tunekeeper").unlink()
    (root / ".tunekeeper").mkdir()
    (root / ".tunekeeper" / "locks").symlink_to(tmp_path / "outside")
    with pytest.raises(TunekeeperError, match="outside the repository"):
        lock_path(root / ".tunekeeper", "owner", "dev")
    assert own_folder(root, ".tunekeeper") == root / ".tunekeeper"
