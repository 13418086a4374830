"""Reading the files tunekeeper keeps for itself in a repository's ``.tunekeeper/`` folder.

The state file, the lock files and the upload records live inside the checkout, so a checkout can
carry anything there: a pull request may commit ``.tunekeeper/state.json`` as a link to
``/dev/zero`` (which a plain read would follow until memory runs out), a link to a file outside the
repository, or a huge file. These are caches and notes, never the source of truth, so a file that is
not a regular file of a sane size reads as absent: the caller then does what it does when the file
is missing (observe again, take the lock, upload again). A link is never followed, and the open
does not block (a FIFO cannot hang the run).

The folder itself must not lead out of the repository either, since tunekeeper also writes there:
``own_folder`` refuses a ``.tunekeeper`` that is a link to elsewhere.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tunekeeper.errors import TunekeeperError


def read_own_file(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``, or None when it is missing, a link, not a regular file, unreadable, or
    larger than ``limit`` bytes (checked before the read and again while reading)."""
    flags = os.O_RDONLY
    for optional in ("O_NOFOLLOW", "O_NONBLOCK", "O_NOCTTY"):  # not every platform has them all
        flags |= getattr(os, optional, 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # missing, a link (ELOOP), no permission
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while being read
                return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def own_folder(root: Path, name: str) -> Path:
    """``root / name``, the folder tunekeeper writes its state in; refused when it is a link that leads
    out of ``root``, or something other than a folder."""
    folder = root / name
    if folder.is_symlink() and not folder.resolve().is_relative_to(root.resolve()):
        raise TunekeeperError(
            f"{folder} is a link to {folder.resolve()}, outside the repository {root}",
            hint=f"tunekeeper keeps its state in a plain {name} folder of the repository, and a link "
                 "committed to the repository could make it write elsewhere: remove the link",
        )
    if folder.exists() and not folder.is_dir():
        raise TunekeeperError(
            f"{folder} is not a folder",
            hint=f"tunekeeper keeps its state in a {name} folder of the repository: remove or rename "
                 "what is there",
        )
    return folder
