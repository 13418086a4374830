"""Stacks and owner identities: zero-config, the same on every clone, different between repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tunekeeper.errors import TunekeeperError
from tunekeeper.resources import load
from tunekeeper.resources.stack import locate, with_stack

JOB = """apiVersion: tunekeeper.io/v1alpha1
kind: Deployment
metadata:
  name: {name}
spec:
  model:
    name: gpt-4.1-mini
    version: 2025-04-14
"""
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, env=GIT_ENV, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def repo(folder: Path, stacks: dict[str, str | None], message: str = "start") -> Path:
    """A repository with one deployment manifest per stack folder ("" is the root); value: explicit owner."""
    for path, owner in stacks.items():
        (folder / path).mkdir(parents=True, exist_ok=True)
        (folder / path / "app.yaml").write_text(JOB.format(name=(path or "root").replace("/", "-")))
        if path:
            (folder / path / "tunekeeper.yaml").write_text(f"owner: {owner}\n" if owner else "# a stack\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return folder


def stack_of(*paths: Path):  # type: ignore[no-untyped-def]
    desired, _ = load(list(paths))
    return locate(desired, list(paths))


def test_a_folder_with_a_stack_file_is_its_own_stack_and_only_its_root_is_complete(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"": None, "team/a": None, "team/b": None})
    commit = git(root, "rev-list", "--max-parents=0", "HEAD")
    a = stack_of(root / "team" / "a")
    assert a.root == root / "team" / "a" and a.complete
    assert a.owner.key == f"git:{commit}:team/a"
    assert not stack_of(root / "team" / "a" / "app.yaml").complete  # one file is a subset
    assert stack_of(root / "team" / "b").owner.id != a.owner.id
    top = stack_of(root / "app.yaml")
    assert top.root == root and top.owner.key == f"git:{commit}:." and not top.complete
    with pytest.raises(TunekeeperError, match="several stacks"):
        stack_of(root / "team")


def test_every_clone_is_the_same_owner_and_another_repository_is_not(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"svc": None})
    clone = tmp_path / "elsewhere" / "clone"
    clone.parent.mkdir()
    git(tmp_path, "clone", "-q", str(root), str(clone))
    git(root, "commit", "-q", "--allow-empty", "-m", "later")
    assert stack_of(clone / "svc").owner == stack_of(root / "svc").owner
    # another repository: its own first commit (a fork shares it: there, set owner: in tunekeeper.yaml)
    other = repo(tmp_path / "other", {"svc": None}, message="another project")
    assert stack_of(other / "svc").owner.id != stack_of(root / "svc").owner.id


def test_an_explicit_owner_wins_and_bad_stack_files_are_named(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"svc": "team-search"})
    assert stack_of(root / "svc").owner.key == "name:team-search"
    (root / "svc" / "tunekeeper.yaml").write_text("owner: 'no spaces allowed'\n")
    with pytest.raises(TunekeeperError, match="owner must be"):
        stack_of(root / "svc")
    (root / "svc" / "tunekeeper.yaml").write_text("ownr: x\n")
    with pytest.raises(TunekeeperError, match="unknown field"):
        stack_of(root / "svc")


def test_a_shallow_clone_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"svc": None})
    git(root, "commit", "-q", "--allow-empty", "-m", "second")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{root}", str(shallow))
    with pytest.raises(TunekeeperError, match="shallow clone") as info:
        stack_of(shallow / "svc")
    assert "fetch-depth: 0" in (info.value.hint or "") and "owner:" in (info.value.hint or "")
    (shallow / "svc" / "tunekeeper.yaml").write_text("owner: svc\n")
    assert stack_of(shallow / "svc").owner.key == "name:svc"


def test_outside_git_the_folder_is_the_identity(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "app.yaml").write_text(JOB.format(name="x"))
    desired, _ = load([folder])
    stack = with_stack(desired, [folder])
    assert stack.owner.key == f"path:{folder.absolute().as_posix()}" and stack.complete
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    assert stack_of(moved).owner.id != stack.owner.id


def test_the_stack_file_is_not_read_as_a_manifest(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"svc": None})
    (root / "svc" / "tunekeeper.yaml").write_text("# kind of a stack\nowner: svc\n")
    desired, warnings = load([root / "svc"])
    assert desired.files == ("svc/app.yaml",) and not warnings


@pytest.mark.timeout(20)
def test_a_stack_file_not_a_regular_file_inside_the_repository_is_refused_by_name(tmp_path: Path) -> None:
    """A FIFO never hangs the run, a link out of the repository is not followed, a huge file is not read:
    the stack file decides what may be deleted, so it is read under the same rules as manifests."""
    root = repo(tmp_path / "r", {"svc": "team-search"})
    stack_file = root / "svc" / "tunekeeper.yaml"
    outside = tmp_path / "outside.yaml"
    outside.write_text("owner: someone-else\n")
    stack_file.unlink()
    os.mkfifo(stack_file)
    with pytest.raises(TunekeeperError, match="tunekeeper.yaml.*not a regular file"):
        stack_of(root / "svc")
    stack_file.unlink()
    stack_file.symlink_to(outside)
    with pytest.raises(TunekeeperError, match="tunekeeper.yaml.*outside the repository"):
        stack_of(root / "svc")
    stack_file.unlink()
    with stack_file.open("wb") as big:
        big.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(TunekeeperError, match="tunekeeper.yaml.*bytes"):
        stack_of(root / "svc")
