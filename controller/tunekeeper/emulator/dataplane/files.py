"""Data-plane files: upload, import from a URL, list, get, content, delete.

Uploaded training data is checked with the same rules as ``tunekeeper validate``
(``tunekeeper.datasets.validate_bytes``) when it arrives; the outcome is revealed after a short
simulated processing time, so a new file reads ``pending`` first, then ``processed`` or
``error`` (with ``status_details``). Imports fetch only from places on this machine: ``file://``
paths under the data dir (or a configured import dir) and ``http(s)`` URLs on the loopback
interface; anything else fails with ``fileImportFailed`` and is never fetched.

Hostile input is bounded here: a ``file://`` import reads only a regular file (opened
non-blocking and checked through its descriptor, off the event loop, so a FIFO or a device is
refused at once), an ``http(s)`` import never follows a redirect, and every way a fetch can fail
gives the same answer (nothing tells an open loopback port from a closed one). An upload waits
at most ``CHUNK_WAIT_SECONDS`` for each chunk of its body, bounds every form field, and a broken
multipart body is a 400 in Azure's error shape.

Store: kind ``file``, the File object plus private keys (``_ready_at``, ``_outcome``,
``_details``, ``_stats``, ``_sha256``); the bytes are a blob under the file id. Results files
of jobs are written here too (by jobs.py, through ``add_result_file``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tunekeeper.datasets import validate_bytes
from tunekeeper.emulator.azure_errors import DataPlaneError, invalid_payload, not_found
from tunekeeper.emulator.context import EmulatorContext
from tunekeeper.emulator.dataplane.protocol import (
    Routes,
    context,
    int_query,
    is_preview,
    json_body,
    json_response,
    list_body,
    location,
    new_id,
    page,
    public,
)
from tunekeeper.localfiles import FileTooLarge, NotRegularFile, read_regular_file
from tunekeeper.netaddr import is_loopback_host

MAX_FILE_BYTES = 512 * 1024 * 1024
PROCESSING_SECONDS = 2.0  # at speed 1, plus one second per MB
STABLE_PURPOSES = frozenset({"fine-tune", "fine-tune-results", "assistants", "assistants_output", "batch"})
PREVIEW_PURPOSES = STABLE_PURPOSES | {"batch_output", "evals", "evals_output"}
UPLOADABLE = frozenset({"fine-tune", "assistants", "batch", "evals"})
MAX_DETAIL_LINES = 5
IMPORT_TIMEOUT_SECONDS = 60
CHUNK_WAIT_SECONDS = 60.0  # an upload whose next chunk takes longer is dropped (a stalled or slow client)
# What aiohttp's multipart reader raises for a malformed body (bad boundary, broken part headers).
MALFORMED_MULTIPART = (
    ValueError,
    AssertionError,
    aiohttp.ClientPayloadError,
    HttpProcessingError,
    web.HTTPBadRequest,
)
MAX_FIELD_BYTES = 1024  # form fields other than the file ('purpose')


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/openai/files", upload_file)
    routes.add("GET", "/openai/files", list_files)
    routes.add("POST", "/openai/files/import", import_file)
    routes.add("GET", "/openai/files/{file_id}", get_file)
    routes.add("DELETE", "/openai/files/{file_id}", delete_file)
    routes.add("GET", "/openai/files/{file_id}/content", get_file_content)


# -- reading state -----------------------------------------------------------------------------
def refresh_file(ctx: EmulatorContext, doc: dict[str, Any]) -> dict[str, Any]:
    """Finish processing if its time has come (writes the store); returns the document."""
    if doc.get("status") == "pending" and ctx.clock.now() >= float(doc["_ready_at"]):
        doc["status"] = doc["_outcome"]
        if doc["_outcome"] == "error":
            doc["status_details"] = doc["_details"]
        ctx.store.put("file", doc["id"], doc)
    return doc


def find_file(ctx: EmulatorContext, file_id: str) -> dict[str, Any] | None:
    doc = ctx.store.get("file", file_id)
    return None if doc is None else refresh_file(ctx, doc)


def add_result_file(
    ctx: EmulatorContext, file_id: str, filename: str, data: bytes, created_at: float
) -> None:
    """Store a service-generated file (a job's results.csv); already processed."""
    if ctx.store.get("file", file_id) is not None:
        return
    with ctx.store.transaction():
        ctx.store.put_blob(file_id, data)
        ctx.store.put(
            "file",
            file_id,
            {
                "object": "file",
                "id": file_id,
                "created_at": int(created_at),
                "status": "processed",
                "bytes": len(data),
                "purpose": "fine-tune-results",
                "filename": filename,
                "_ready_at": created_at,
                "_outcome": "processed",
                "_details": None,
                "_sha256": hashlib.sha256(data).hexdigest(),
            },
        )


# -- creating ----------------------------------------------------------------------------------
def _check_purpose(request: web.Request, purpose: object) -> str:
    allowed = PREVIEW_PURPOSES if is_preview(request) else STABLE_PURPOSES
    if not isinstance(purpose, str) or purpose not in allowed:
        raise invalid_payload(
            f"The purpose '{purpose}' is not valid. Supported values: {', '.join(sorted(allowed))}.",
            param="purpose",
        )
    if purpose not in UPLOADABLE:
        raise invalid_payload(
            f"Files with purpose '{purpose}' are generated by the service and cannot be uploaded.",
            param="purpose",
        )
    return purpose


SNIFF_BYTES = 1 << 20  # how much of the first example the format sniffing reads


def detect_method(data: bytes) -> str:
    """Which training format a file is in: DPO files carry preferred/non-preferred outputs.

    Looks at the first non-blank line only, and at most its first ``SNIFF_BYTES``: neither a copy
    of the upload nor a full parse of a huge first line (the scan reports such a line anyway).
    """
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:min(end, start + 64)].strip():
            if end - start > SNIFF_BYTES:
                return "dpo" if b'"preferred_output"' in data[start:start + SNIFF_BYTES] else "supervised"
            try:
                first = orjson.loads(data[start:end])
            except orjson.JSONDecodeError:
                return "supervised"
            return "dpo" if isinstance(first, dict) and "preferred_output" in first else "supervised"
        start = end + 1
    return "supervised"


def _check_file_limits(ctx: EmulatorContext, purpose: str, size: int) -> None:
    """Azure's per-resource limits on fine-tuning files (count and total size)."""
    if purpose != "fine-tune":
        return
    existing = [d for d in ctx.store.list("file") if d["purpose"] == "fine-tune"]
    if len(existing) + 1 > ctx.config.max_fine_tune_files:
        raise DataPlaneError(
            400,
            "quotaExceeded",
            f"The resource already holds {len(existing)} fine-tuning files, the maximum is "
            f"{ctx.config.max_fine_tune_files}. Delete files that are no longer needed.",
        )
    total = sum(int(d.get("bytes") or 0) for d in existing) + size
    if total > ctx.config.max_fine_tune_bytes:
        raise DataPlaneError(
            400,
            "quotaExceeded",
            f"Fine-tuning files would total {total} bytes, more than the "
            f"{ctx.config.max_fine_tune_bytes} bytes a resource may hold. Delete files that are "
            "no longer needed.",
        )


def _store_new_file(ctx: EmulatorContext, *, purpose: str, filename: str, data: bytes) -> dict[str, Any]:
    _check_file_limits(ctx, purpose, len(data))
    now = ctx.clock.now()
    file_id = new_id("file")
    outcome, details, stats = "processed", None, None
    if purpose == "fine-tune":
        method = detect_method(data)
        report = validate_bytes(data, filename=filename, method=method)
        stats = {"method": method, "examples": report.stats.examples, "tokens": report.stats.tokens}
        if not report.ok:
            outcome = "error"
            errors = report.errors
            rendered = [d.render() for d in errors[:MAX_DETAIL_LINES]]
            more = len(errors) - len(rendered)
            details = "Validation of jsonl file failed: " + "; ".join(rendered)
            if more > 0:
                details += f"; and {more} more error(s)"
    doc: dict[str, Any] = {
        "object": "file",
        "id": file_id,
        "created_at": int(now),
        "status": "pending",
        "bytes": len(data),
        "purpose": purpose,
        "filename": filename,
        "_ready_at": now + ctx.clock.scaled(PROCESSING_SECONDS + len(data) / 1_000_000),
        "_outcome": outcome,
        "_details": details,
        "_stats": stats,
        "_sha256": hashlib.sha256(data).hexdigest(),
    }
    with ctx.store.transaction():
        ctx.store.put_blob(file_id, data)
        ctx.store.put("file", file_id, doc)
    return doc


def _too_large() -> DataPlaneError:
    return DataPlaneError(
        413,
        "invalidPayload",
        f"The file is larger than the maximum of {MAX_FILE_BYTES // (1024 * 1024)} MB. "
        "Split it, or upload it in parts through /uploads.",
    )


async def upload_file(request: web.Request) -> web.Response:
    ctx = context(request)
    if not request.content_type.startswith("multipart/"):
        raise invalid_payload(
            "Files are uploaded as multipart/form-data with the fields 'purpose' and 'file'."
        )
    try:
        purpose, filename, data = await _read_form(request)
    except MALFORMED_MULTIPART as exc:
        # aiohttp's multipart reader raises these for a malformed body (bad boundary, broken part headers).
        raise invalid_payload(f"The multipart/form-data body is malformed: {first_line(exc)}") from None
    except TimeoutError:
        raise DataPlaneError(
            408, "timeout", f"The upload stalled: no data for {CHUNK_WAIT_SECONDS:g} seconds."
        ) from None
    if purpose is None:
        raise invalid_payload("The form field 'purpose' is required.", param="purpose")
    checked = _check_purpose(request, purpose)
    if data is None or filename is None:
        raise invalid_payload("The form field 'file' is required.", param="file")
    # Validating a large file takes a while: off the event loop, so other requests keep flowing.
    doc = await asyncio.to_thread(_store_new_file, ctx, purpose=checked, filename=filename, data=data)
    return json_response(
        public(doc), status=201, headers={"Location": location(request, f"/files/{doc['id']}")}
    )


async def _read_form(request: web.Request) -> tuple[str | None, str | None, bytes | None]:
    """The 'purpose' and 'file' fields of an upload, each bounded in size and in time per chunk."""
    async with asyncio.timeout(CHUNK_WAIT_SECONDS):
        reader = await request.multipart()
    purpose: str | None = None
    filename: str | None = None
    data: bytes | None = None
    while True:
        async with asyncio.timeout(CHUNK_WAIT_SECONDS):
            part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        if part.name == "file":
            filename = part.filename or "file"
            data = await read_part(part, MAX_FILE_BYTES, _too_large)
        elif part.name == "purpose":
            raw = await read_part(
                part,
                MAX_FIELD_BYTES,
                lambda: invalid_payload(
                    f"The form field 'purpose' is longer than {MAX_FIELD_BYTES} bytes.", param="purpose"
                ),
            )
            purpose = raw.decode("utf-8", "replace").strip()
        else:
            await read_part(
                part,
                MAX_FIELD_BYTES,
                lambda: invalid_payload(
                    f"A form field is longer than {MAX_FIELD_BYTES} bytes; send 'purpose' and 'file' only."
                ),
            )
    return purpose, filename, data


async def read_part(
    part: aiohttp.BodyPartReader, limit: int, too_large: Callable[[], DataPlaneError]
) -> bytes:
    chunks = bytearray()
    while True:
        async with asyncio.timeout(CHUNK_WAIT_SECONDS):
            chunk = await part.read_chunk(1024 * 1024)
        if not chunk:
            return bytes(chunks)
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise too_large()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def import_file(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    for name in ("purpose", "filename", "content_url"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid_payload(f"The field '{name}' is required.", param=name)
    purpose = _check_purpose(request, body["purpose"])
    data = await _fetch(ctx, body["content_url"])
    doc = await asyncio.to_thread(_store_new_file, ctx, purpose=purpose, filename=body["filename"], data=data)
    return json_response(
        public(doc), status=201, headers={"Location": location(request, f"/files/{doc['id']}")}
    )


def _import_failed(message: str) -> DataPlaneError:
    return DataPlaneError(400, "fileImportFailed", message, param="content_url", target="content_url")


def _import_roots(ctx: EmulatorContext) -> list[Path]:
    roots = [Path(p).resolve() for p in ctx.config.import_dirs]
    if ctx.config.data_dir is not None:
        roots.append(Path(ctx.config.data_dir).resolve())
    return roots


async def _fetch(ctx: EmulatorContext, url: str) -> bytes:
    """The bytes behind ``url``, from this machine only (see the module docstring)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _import_failed(f"Import from '{url}' failed: file URLs must name a local path.")
        path = Path(unquote(parts.path)).resolve()
        roots = _import_roots(ctx)
        if not any(path.is_relative_to(root) for root in roots):
            where = (
                ", ".join(str(r) for r in roots) or "(none configured: start the emulator with a data dir)"
            )
            raise _import_failed(f"Import from '{url}' failed: the emulator imports files only from {where}.")
        try:
            return await asyncio.to_thread(_read_regular_file, path)
        except _NotRegular as exc:
            raise _import_failed(f"Import from '{url}' failed: {exc}.") from None
        except OSError as exc:
            raise _import_failed(f"Import from '{url}' failed: {exc.strerror or exc}.") from None
    if scheme in ("http", "https"):
        if not is_loopback_host(parts.hostname):
            raise _import_failed(
                f"Import from '{url}' failed: the emulator fetches only from the loopback "
                "interface (localhost, 127.0.0.0/8, ::1), never from other hosts."
            )
        # One answer for every failure (refused, reset, timeout, redirect, error status): what the
        # error says must not tell which loopback ports are open.
        unreachable = _import_failed(
            f"Import from '{url}' failed: the URL did not answer 200 with the file "
            "(the emulator follows no redirects)."
        )
        try:
            timeout = aiohttp.ClientTimeout(total=IMPORT_TIMEOUT_SECONDS)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise unreachable
                if response.content_length is not None and response.content_length > MAX_FILE_BYTES:
                    raise _too_large()
                chunks = bytearray()
                async for chunk in response.content.iter_chunked(1024 * 1024):
                    chunks.extend(chunk)
                    if len(chunks) > MAX_FILE_BYTES:
                        raise _too_large()
                return bytes(chunks)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise unreachable from None
    raise _import_failed(
        f"Import from '{url}' failed: only file:// and loopback http(s) URLs can be imported by the emulator."
    )


class _NotRegular(Exception):
    pass


def _read_regular_file(path: Path) -> bytes:
    """A regular file's bytes, bounded; a FIFO or device is refused without waiting on it."""
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except NotRegularFile:
        raise _NotRegular(
            "only regular files can be imported (this is a FIFO, device, socket or folder)"
        ) from None
    except FileTooLarge:
        raise _too_large() from None


# -- reading -----------------------------------------------------------------------------------
async def list_files(request: web.Request) -> web.Response:
    ctx = context(request)
    purpose = request.query.get("purpose")
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_payload(
            f"The query parameter 'order' must be 'asc' or 'desc', got '{order}'.", param="order"
        )
    limit = int_query(request, "limit", 10_000, low=1, high=10_000)
    docs = [refresh_file(ctx, d) for d in ctx.store.list("file")]
    if purpose:
        docs = [d for d in docs if d["purpose"] == purpose]
    if order == "desc":
        docs.reverse()
    chunk, has_more = page(docs, after=request.query.get("after"), limit=limit)
    body = list_body([public(d) for d in chunk])
    if is_preview(request):
        body["has_more"] = has_more
    return json_response(body)


def _require(ctx: EmulatorContext, file_id: str) -> dict[str, Any]:
    doc = find_file(ctx, file_id)
    if doc is None:
        raise not_found("File", file_id)
    return doc


async def get_file(request: web.Request) -> web.Response:
    return json_response(public(_require(context(request), request.match_info["file_id"])))


async def get_file_content(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["file_id"])
    data = ctx.store.get_blob(doc["id"]) or b""
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{doc["filename"]}"'},
    )


async def delete_file(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _require(ctx, request.match_info["file_id"])
    with ctx.store.transaction():
        ctx.store.delete("file", doc["id"])
        ctx.store.delete_blob(doc["id"])
    return json_response({"object": "file", "deleted": True, "id": doc["id"]})


# Shared with uploads.py, which makes Files out of an Upload's parts by the same rules.
check_purpose = _check_purpose
store_new_file = _store_new_file
