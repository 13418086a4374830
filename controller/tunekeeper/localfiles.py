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


class NotReadable(Exception):
    """A file ``read_regular_file`` refuses; ``reason`` says why (a sentence fragment: "is ...")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotRegularFile(NotReadable):
    def __init__(self, kind: str) -> None:
        super().__init__(f"is not a regular file (it is {kind})")
        self.kind = kind


class FileTooLarge(NotReadable):
    def __init__(self, size: int, *, grew: bool) -> None:
        super().__init__(f"grew past {size} bytes while being read" if grew else f"is {size} bytes")
        self.size = size


def read_regular_file(path: Path, limit: int, *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``NotReadable`` says why not, and
    OSError is raised as ``os.open`` raises it (a missing file; a link when ``follow_links`` is off).

    The file is opened non-blocking (a FIFO without a writer cannot hang the read) and checked
    through its open descriptor, so what was checked is what is read; its size is checked before
    the read and again while reading (it may grow)."""
    flags = os.O_RDONLY
    optional = ("O_NONBLOCK", "O_NOCTTY") if follow_links else ("O_NONBLOCK", "O_NOCTTY", "O_NOFOLLOW")
    for name in optional:  # not every platform has them all
        flags |= getattr(os, name, 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(file_type(info.st_mode))
        if info.st_size > limit:
            raise FileTooLarge(info.st_size, grew=False)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(size, grew=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_type(mode: int) -> str:
    """What a file that is not a regular file is, for messages: "a FIFO", "a folder", ..."""
    for is_type, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if is_type(mode):
            return name
    return "not a regular file"


def read_own_file(path: Path, limit: int) -> bytes | None:
    """The bytes of one of tunekeeper's own files, or None when it is missing, a link, not a regular
    file, unreadable, or larger than ``limit`` bytes."""
    try:
        return read_regular_file(path, limit, follow_links=False)
    except (OSError, NotReadable):
        return None


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
