"""Stacks: which set of manifests a run acts for, and the owner identity its markers carry.

Called by the CLI before ``plan``, ``apply``, ``status`` and ``gc`` (never by ``validate``,
which needs no identity). The operator does not use it: there the owner is the custom resource.

The stack root is the nearest folder, at or above the manifests a run reads (and inside the
repository), that holds a stack file ``tunekeeper.yaml``; without one it is the repository root
(the folder holding ``.git``), or, outside git, the folder the manifests were read from. Every
manifest of a run must belong to one stack (a manifest belongs to the nearest stack file above
it): applying a parent folder of two stacks is an error, not a merge.

The owner identity, zero-config and the same on every clone of a repository:

- ``owner: NAME`` in the stack file: the key is ``name:NAME`` (for cases the default cannot tell
  apart, or to keep the identity when the repository moves or is re-created);
- in a git repository: ``git:<root commit>:<stack path inside the repository>`` — the root commit
  is the same in every clone (CI checkouts included) and differs between repositories. A
  shallow clone does not know its root commit: that is an error asking for full history
  (``actions/checkout`` with ``fetch-depth: 0``) or an explicit owner, never a guess;
- outside git: ``path:<absolute stack folder>`` (moving the folder changes the owner; set
  ``owner:`` to avoid that).

``complete`` is true when the run read the whole stack (one of its paths is the stack root or a
folder above it); only such a run may prune or collect garbage. This module reads files and
runs ``git``; it never talks to Azure.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from tunekeeper.errors import TunekeeperError
from tunekeeper.resources.loader import STACK_FILE, Refused, read_manifest
from tunekeeper.resources.specs import Desired, Owner

__all__ = ["STACK_FILE", "Stack", "locate", "owner_of", "read_stack_file", "root_commit", "with_stack"]
OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
STACK_KEYS = frozenset({"owner"})


@dataclass(frozen=True, slots=True)
class Stack:
    root: Path  # the stack root (absolute)
    owner: Owner
    complete: bool  # the run read the whole stack


def stack_root_of(folder: Path, repository: Path) -> Path:
    """The nearest folder at or above ``folder`` (not above ``repository``) holding a stack file."""
    folder = folder.absolute()
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / STACK_FILE):  # whatever it is: read_stack_file judges it
            return candidate
        if candidate == repository:
            break
    return repository


def locate(desired: Desired, paths: Sequence[Path]) -> Stack:
    """The stack of a run that read ``paths`` (as given) into ``desired``."""
    repository = desired.root.absolute()
    given = [p.absolute() for p in (paths or [Path(".")])]
    roots = {stack_root_of((repository / f).parent, repository) for f in desired.files}
    if not roots:
        folders = [p if p.is_dir() else p.parent for p in given]
        roots = {stack_root_of(f, repository) for f in folders}
    if len(roots) > 1:
        listed = ", ".join(sorted(_shown(r, repository) for r in roots))
        raise TunekeeperError(
            f"These manifests belong to several stacks ({listed})",
            hint=f"each folder with a {STACK_FILE} is its own stack: plan and apply one at a time",
        )
    (root,) = roots
    complete = any(p.is_dir() and (p == root or p in root.parents) for p in given)
    return Stack(root, owner_of(root, repository), complete)


def with_stack(desired: Desired, paths: Sequence[Path]) -> Desired:
    """``desired`` with the owner and completeness of its stack filled in."""
    stack = locate(desired, paths)
    return replace(desired, owner=stack.owner, complete=stack.complete)


def owner_of(root: Path, repository: Path) -> Owner:
    """The owner identity of the stack rooted at ``root`` (see the module docstring)."""
    explicit = read_stack_file(root / STACK_FILE, repository)
    if explicit is not None:
        return Owner(f"name:{explicit}", f"stack {explicit}")
    inside = _shown(root, repository)
    if (repository / ".git").exists():
        commit = root_commit(repository)
        return Owner(f"git:{commit}:{inside}", f"repository {commit[:12]}, stack {inside}")
    return Owner(f"path:{root.absolute().as_posix()}", f"folder {root.absolute().as_posix()}")


def read_stack_file(path: Path, repository: Path) -> str | None:
    """The explicit owner name of a stack file (None: no file, or no ``owner:`` in it).

    Read under the rules manifests are read under (``loader.read_manifest``): a regular file inside
    the repository, size checked before a bounded read, never a FIFO or device. Anything else is
    an error, never skipped: the stack file decides which objects this run owns and may delete.
    """
    if not os.path.lexists(path):
        return None
    try:
        text = read_manifest(path, repository).decode("utf-8")
    except Refused as refused:
        raise TunekeeperError(f"{path}: {refused.reason}", hint=refused.hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TunekeeperError(f"{path}: not a readable stack file ({type(exc).__name__})",
                              hint=f"{STACK_FILE} holds at most one line: owner: NAME") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TunekeeperError(f"{path}: not a readable stack file ({type(exc).__name__})",
                              hint=f"{STACK_FILE} holds at most one line: owner: NAME") from None
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - STACK_KEYS:
        unknown = sorted(
            str(k) for k in (set(data) - STACK_KEYS if isinstance(data, dict) else {"(not a mapping)"})
        )
        raise TunekeeperError(f"{path}: unknown field(s) {', '.join(unknown)}",
                              hint=f"{STACK_FILE} holds at most one field: owner: NAME")
    owner = data.get("owner")
    if owner is None:
        return None
    if not isinstance(owner, str) or not OWNER_NAME.match(owner):
        raise TunekeeperError(f"{path}: owner must be 1-63 letters, digits, '.', '_' or '-', got {owner!r}",
                              hint="for example owner: team-search")
    return owner


def root_commit(repository: Path) -> str:
    """The repository's first commit (the smallest id when histories were merged)."""
    try:
        shallow = _git(repository, "rev-parse", "--is-shallow-repository")
        if shallow == "true":
            raise TunekeeperError(
                f"{repository} is a shallow clone: its first commit, which names this repository's stack, "
                "is not available",
                hint="fetch the full history (actions/checkout: fetch-depth: 0), "
                f"or set owner: NAME in {STACK_FILE}",
            )
        commits = _git(repository, "rev-list", "--max-parents=0", "HEAD").split()
    except FileNotFoundError:
        raise TunekeeperError(
            "git is not installed, so the repository's identity cannot be read",
            hint=f"install git, or set owner: NAME in {STACK_FILE}",
        ) from None
    except subprocess.CalledProcessError:
        raise TunekeeperError(
            f"{repository} has no commit yet, so it has no identity to mark objects with",
            hint=f"commit the manifests first, or set owner: NAME in {STACK_FILE}",
        ) from None
    return min(commits)


def _git(repository: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True, check=True,
                          timeout=30)
    return done.stdout.strip()


def _shown(folder: Path, repository: Path) -> str:
    try:
        inside = folder.relative_to(repository).as_posix()
    except ValueError:
        return folder.as_posix()
    return inside if inside not in ("", ".") else "."
