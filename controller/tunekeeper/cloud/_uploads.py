"""Large files in parts through Azure's ``/uploads`` API, resumable across runs.

Called by ``cloud/_dataplane.py`` for a file above ``CloudSettings.multipart_above`` (smaller
files keep the single ``POST /files``). The file is cut into parts of ``part_size`` bytes; each
part is sent with the openai SDK's uploads client, and ``complete`` names the parts in order with
the whole file's MD5, so the service checks what it joined.

Resuming. When a records folder is given (the CLI uses ``.tunekeeper/uploads/``), a small JSON
record per upload is written after each part that arrived: the upload id, its expiry, and each
sent part's id and SHA-256. A rerun (after a crash, a kill or a lost connection) finds the record
by the account endpoint, file name, purpose, size and part size; sends only the parts that did
not arrive or whose bytes changed; and completes. The service is the judge of the record: when
it refuses a part or the completion of a resumed upload (expired, cancelled, completed or
unknown to it), the old upload is cancelled and the file is sent again from the start, once.

Never an orphan: an upload that fails for a reason a rerun cannot mend (the service refuses a
part or the file) is cancelled before the error is raised; one interrupted by a crash or a lost
connection is kept, with its record, for the rerun to finish; a record close to its upload's
expiry is cancelled and dropped rather than resumed, and records past their expiry are swept
(the service has expired those uploads). Without a records folder, any failure cancels the
upload.

It must not retry by itself (the SDK's policy does), read a whole file into memory, or log
secrets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import openai

from tunekeeper.cloud._errors import translated
from tunekeeper.cloud._streams import PartStream
from tunekeeper.cloud.base import ProgressCallback
from tunekeeper.errors import CloudError, PermanentCloudError
from tunekeeper.localfiles import read_own_file

RECORD_VERSION = 1
MIME_TYPE = "text/jsonl"
EXPIRY_MARGIN = 600.0  # seconds: a record this close to its upload's expiry is not resumed
HASH_BLOCK = 1 << 20
MAX_RECORD_BYTES = 16 << 20  # a record lists its parts (at most Azure's 10,000); larger is not ours


@dataclass(slots=True)
class UploadRecord:
    """What a rerun needs to resume one upload; kept as JSON under the records folder."""

    endpoint: str
    filename: str
    purpose: str
    size: int
    part_size: int
    upload_id: str
    expires_at: float
    parts: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (part id, sha256)

    def to_json(self) -> bytes:
        return json.dumps({
            "version": RECORD_VERSION, "endpoint": self.endpoint, "filename": self.filename,
            "purpose": self.purpose, "size": self.size, "part_size": self.part_size,
            "upload_id": self.upload_id, "expires_at": self.expires_at,
            "parts": {str(i): {"id": pid, "sha256": digest}
                      for i, (pid, digest) in sorted(self.parts.items())},
        }, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> UploadRecord | None:
        """The record, or None for one that is unreadable or of another format (it is then ignored)."""
        try:
            raw = json.loads(data)
            if raw.get("version") != RECORD_VERSION:
                return None
            return cls(
                endpoint=str(raw["endpoint"]), filename=str(raw["filename"]), purpose=str(raw["purpose"]),
                size=int(raw["size"]), part_size=int(raw["part_size"]), upload_id=str(raw["upload_id"]),
                expires_at=float(raw["expires_at"]),
                parts={int(i): (str(p["id"]), str(p["sha256"])) for i, p in raw["parts"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


class _Restart(Exception):
    """The service refused to go on with a resumed upload: start a fresh one."""


class PartUploader:
    """Sends one file in parts (see the module docstring)."""

    def __init__(
        self, client: openai.AsyncAzureOpenAI, *, endpoint: str, part_size: int,
        records: Path | None, redact: Sequence[str] = (),
    ) -> None:
        if part_size < 1:
            raise ValueError(f"part_size must be positive, got {part_size}")
        self._client = client
        self._endpoint = endpoint
        self._part_size = part_size
        self._records = records
        self._redact = tuple(redact)
        self.parts_sent = 0  # parts this uploader sent (skipped ones not counted): for tests and logs

    async def upload(
        self, stream: IO[bytes], size: int, *, filename: str, purpose: str,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Upload ``size`` bytes of ``stream`` (seekable) in parts; the File as the service returns it."""
        self._sweep()
        record_path = self._record_path(filename, purpose, size)
        record = self._load(record_path, filename, purpose, size)
        if record is not None and record.expires_at - EXPIRY_MARGIN < time.time():
            await self._cancel(record.upload_id, filename)  # too late to finish it: start afresh
            self._forget(record_path)
            record = None
        try:
            return await self._send(stream, size, filename, purpose, record, record_path, on_progress)
        except _Restart:
            return await self._send(stream, size, filename, purpose, None, record_path, on_progress)

    # -- the upload ----------------------------------------------------------------------------
    async def _send(
        self, stream: IO[bytes], size: int, filename: str, purpose: str, record: UploadRecord | None,
        record_path: Path | None, on_progress: ProgressCallback | None,
    ) -> dict[str, Any]:
        resumed = record is not None
        if record is None:
            with translated(f"Start upload of {filename}", redact=self._redact):
                created = await self._client.uploads.create(
                    bytes=size, filename=filename, mime_type=MIME_TYPE, purpose=cast(Any, purpose))
            record = UploadRecord(self._endpoint, filename, purpose, size, self._part_size, created.id,
                                  float(created.expires_at))
            self._save(record_path, record)
        try:
            part_ids, md5 = await self._send_parts(stream, size, record, record_path, resumed, on_progress)
            with translated(f"Complete upload of {filename}", redact=self._redact):
                done = await self._client.uploads.complete(record.upload_id, part_ids=part_ids, md5=md5)
        except PermanentCloudError as refused:
            await self._cancel(record.upload_id, filename)
            self._forget(record_path)
            if resumed:
                raise _Restart from refused
            raise
        except CloudError:
            # Throttled past the SDK's retries, a server error, a lost connection: a rerun resumes
            # from the record. Without a record nothing could resume it, so it goes.
            if record_path is None:
                await self._cancel(record.upload_id, filename)
            raise
        except BaseException:
            if record_path is None:  # a crash or Ctrl-C: with no record the upload would be orphaned
                with contextlib.suppress(Exception):
                    await self._cancel(record.upload_id, filename)
            raise
        self._forget(record_path)
        if done.file is None:
            raise PermanentCloudError(f"Complete upload of {filename}: the service returned no file")
        file: dict[str, Any] = done.file.model_dump(mode="json")
        return file

    async def _send_parts(
        self, stream: IO[bytes], size: int, record: UploadRecord, record_path: Path | None, resumed: bool,
        on_progress: ProgressCallback | None,
    ) -> tuple[list[str], str]:
        md5 = hashlib.md5()  # the service's checksum of the joined file, not a security measure
        part_ids: list[str] = []
        count = max(1, -(-size // self._part_size))
        for index in range(count):
            start = index * self._part_size
            length = min(self._part_size, size - start)
            digest = _digest(stream, start, length, md5)
            known = record.parts.get(index)
            if known is not None and known[1] == digest:
                part_ids.append(known[0])
                if on_progress is not None:
                    on_progress(start + length, size)
                continue

            def progress(done: int, base: int = start) -> None:
                if on_progress is not None:
                    on_progress(base + done, size)

            part_stream = PartStream(stream, start, length, progress)
            try:
                action = f"Upload part {index + 1} of {count} of {record.filename}"
                with translated(action, redact=self._redact):
                    part = await self._client.uploads.parts.create(
                        record.upload_id, data=(record.filename, cast(IO[bytes], part_stream)))
            except PermanentCloudError as refused:
                if resumed:
                    raise _Restart from refused
                raise
            self.parts_sent += 1
            record.parts[index] = (part.id, digest)
            self._save(record_path, record)
            part_ids.append(part.id)
        return part_ids, md5.hexdigest()

    async def _cancel(self, upload_id: str, filename: str) -> None:
        """Cancel an upload; one the service already closed (or forgot) needs nothing more."""
        with (
            contextlib.suppress(PermanentCloudError),
            translated(f"Cancel upload of {filename}", redact=self._redact),
        ):
            await self._client.uploads.cancel(upload_id)

    # -- records -------------------------------------------------------------------------------
    def _record_path(self, filename: str, purpose: str, size: int) -> Path | None:
        if self._records is None:
            return None
        key = hashlib.sha256(
            "\n".join([self._endpoint, filename, purpose, str(size), str(self._part_size)]).encode()
        ).hexdigest()[:32]
        return self._records / f"upload-{key}.json"

    def _load(self, path: Path | None, filename: str, purpose: str, size: int) -> UploadRecord | None:
        if path is None:
            return None
        data = read_own_file(path, MAX_RECORD_BYTES)  # a link, a FIFO or a huge file reads as absent
        record = UploadRecord.from_json(data) if data is not None else None
        matches = record is not None and (record.endpoint, record.filename, record.purpose, record.size,
                                          record.part_size) == (self._endpoint, filename, purpose, size,
                                                                self._part_size)
        if record is None or not matches:
            self._forget(path)  # unreadable, or another format: it cannot be resumed
            return None
        return record

    def _sweep(self) -> None:
        """Drop records whose upload has expired: the service has dropped those uploads itself. (A
        record left by an upload whose file then changed is never resumed; this is its end.)"""
        if self._records is None or not self._records.is_dir():
            return
        now = time.time()
        for path in self._records.glob("upload-*.json"):
            data = read_own_file(path, MAX_RECORD_BYTES)
            record = UploadRecord.from_json(data) if data is not None else None
            if record is not None and record.expires_at < now:
                self._forget(path)

    def _save(self, path: Path | None, record: UploadRecord) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        scratch.write_bytes(record.to_json())
        os.replace(scratch, path)

    @staticmethod
    def _forget(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _digest(stream: IO[bytes], start: int, length: int, md5: Any) -> str:
    """SHA-256 of stream[start:start + length], read in blocks; ``md5`` is fed the same bytes."""
    sha = hashlib.sha256()
    stream.seek(start)
    left = length
    while left > 0:
        block = stream.read(min(HASH_BLOCK, left))
        if not block:
            break
        sha.update(block)
        md5.update(block)
        left -= len(block)
    return sha.hexdigest()
