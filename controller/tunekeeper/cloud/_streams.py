"""Read-only streams that the SDKs' multipart encoder reads uploads from, without loading a file.

Called by ``cloud/_dataplane.py`` (a whole training file, with the UTF-8 BOM Azure expects added
in front) and ``cloud/_uploads.py`` (one part of it for Azure's ``/uploads``). httpx reads them in
blocks and seeks back to 0 when the SDK retries a request, so both keep a position over a known
size; that plumbing lives once, in ``SizedReader``. They must never read a whole file into memory.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO, Any

from tunekeeper.cloud.base import ProgressCallback

UTF8_BOM = b"\xef\xbb\xbf"


class SizedReader(io.RawIOBase):
    """A readable, seekable stream of ``size`` bytes; subclasses fill ``readinto``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    @property
    def size(self) -> int:
        """Bytes this stream yields."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        self._moved()
        return self._pos

    def _moved(self) -> None:
        """Called after every seek; a stream that keeps a source in step moves it here."""


class UploadStream(SizedReader):
    """A training file read from disk in chunks, with an optional UTF-8 BOM in front.

    httpx's multipart encoder reads it 64 KiB at a time (and seeks back to 0 when the SDK
    retries), so a 500 MB file never sits in memory. ``on_progress(done, total)`` is called
    after every read; on a retry ``done`` starts again from 0.
    """

    def __init__(
        self, path: Path, *, add_bom: bool = False, on_progress: ProgressCallback | None = None
    ) -> None:
        file: io.BufferedReader = path.open("rb")
        head = file.read(len(UTF8_BOM))
        file.seek(0)
        prefix = UTF8_BOM if add_bom and head != UTF8_BOM else b""
        super().__init__(len(prefix) + os.fstat(file.fileno()).st_size)
        self._file = file
        self._prefix = prefix
        self._on_progress = on_progress

    @property
    def adds_bom(self) -> bool:
        return bool(self._prefix)

    def _moved(self) -> None:
        self._file.seek(max(0, self._pos - len(self._prefix)))

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        if self._pos < len(self._prefix):
            part = self._prefix[self._pos : self._pos + len(view)]
            view[: len(part)] = part
            filled = len(part)
            self._pos += filled
        if filled < len(view):
            got = self._file.readinto(view[filled:])
            filled += got or 0
            self._pos += got or 0
        if self._on_progress is not None and filled:
            self._on_progress(self._pos, self._size)
        return filled

    def close(self) -> None:
        self._file.close()
        super().close()


class PartStream(SizedReader):
    """Bytes [start, start + length) of a stream that can seek (an ``UploadStream``), read in place.

    httpx's multipart encoder reads it in blocks and seeks it back to 0 when the SDK retries, so
    a part never sits in memory. ``on_progress(done)`` gets the bytes of this part read so far.
    """

    def __init__(self, source: IO[bytes], start: int, length: int, on_progress: Any = None) -> None:
        super().__init__(length)
        self._source = source
        self._start = start
        self._on_progress = on_progress

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        self._source.seek(self._start + self._pos)
        got = self._source.readinto(view[:want]) or 0  # type: ignore[attr-defined]
        self._pos += got
        if self._on_progress is not None and got:
            self._on_progress(self._pos)
        return int(got)
