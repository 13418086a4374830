"""Data-plane large uploads (``/uploads``): create, add a part, complete, cancel.

As the published specs of both api-versions (2024-10-21 and 2025-04-01-preview) define it: an
Upload is created with its ``purpose``, ``filename``, ``bytes`` and ``mime_type``; parts arrive as
multipart form field ``data``; ``complete`` names the parts in order (and may give the whole
file's ``md5``) and turns them into a File, processed and checked like a direct upload
(files.py); ``cancel`` drops the parts. An Upload expires two hours after its creation.

Limits (Azure's): an Upload holds at most 9 GB; a part is at most the size of a direct upload
(512 MB, files.py); an Upload has at most 50,000 parts (each part is a block of an Azure block
blob, hence ``azure_block_id``, and a block blob holds at most 50,000 blocks); the parts named by
``complete`` must add up to the declared ``bytes`` exactly. The resource's own file limits
(count and total size of fine-tuning files) apply when the File is made, as for direct uploads.

Store: kind ``upload`` (the Upload object plus ``_parts``, the part ids in arrival order) and
kind ``upload_part`` (the UploadPart object plus ``_bytes`` and ``_md5``); part bytes are blobs
under the part id. Parts are deleted when their Upload completes or is cancelled.

Tests read the store to see what arrived (``uploads_in(store)``); nothing here knows a client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import aiohttp
from aiohttp import web

from tunekeeper.emulator.azure_errors import DataPlaneError, invalid_payload, not_found
from tunekeeper.emulator.context import EmulatorContext
from tunekeeper.emulator.dataplane.files import (
    CHUNK_WAIT_SECONDS,
    MALFORMED_MULTIPART,
    MAX_FIELD_BYTES,
    MAX_FILE_BYTES,
    check_purpose,
    first_line,
    read_part,
    store_new_file,
)
from tunekeeper.emulator.dataplane.protocol import (
    Routes,
    context,
    json_body,
    json_response,
    location,
    new_id,
    public,
)
from tunekeeper.emulator.store import Store

MAX_UPLOAD_BYTES = 9 * 1000**3  # "an Upload size can be a maximum of 9 GB in total"
MAX_PART_BYTES = MAX_FILE_BYTES  # "up to the standard size limit for file upload"
MAX_PARTS = 50_000  # blocks per Azure block blob
EXPIRES_SECONDS = 2 * 3600  # "will expire two hours after being created"
READ_CHUNK = 1 << 20


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/openai/uploads", create_upload)
    routes.add("POST", "/openai/uploads/{upload_id}/parts", add_part)
    routes.add("POST", "/openai/uploads/{upload_id}/complete", complete_upload)
    routes.add("POST", "/openai/uploads/{upload_id}/cancel", cancel_upload)


def uploads_in(store: Store) -> list[dict[str, Any]]:
    """Every Upload the store holds (oldest first), with its private keys: for tests and reports."""
    return store.list("upload")


def _current(ctx: EmulatorContext, upload_id: str) -> dict[str, Any]:
    doc = ctx.store.get("upload", upload_id)
    if doc is None:
        raise not_found("Upload", upload_id)
    if doc["status"] == "pending" and ctx.clock.now() >= float(doc["expires_at"]):
        doc["status"] = "expired"
        with ctx.store.transaction():
            _drop_parts(ctx, doc)
            ctx.store.put("upload", upload_id, doc)
    return doc


def _require_pending(doc: dict[str, Any], doing: str) -> None:
    if doc["status"] != "pending":
        raise invalid_payload(f"Cannot {doing} Upload {doc['id']}: it is {doc['status']}.")


def _drop_parts(ctx: EmulatorContext, doc: dict[str, Any]) -> None:
    for part_id in doc.get("_parts", ()):
        ctx.store.delete("upload_part", part_id)
        ctx.store.delete_blob(part_id)
    doc["_parts"] = []


async def create_upload(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    for name in ("purpose", "filename", "mime_type"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid_payload(f"The field '{name}' is required.", param=name)
    size = body.get("bytes")
    if type(size) is not int:
        raise invalid_payload("The field 'bytes' is required: the size of the whole file.", param="bytes")
    if not 0 < size <= MAX_UPLOAD_BYTES:
        raise invalid_payload(
            f"The field 'bytes' must be between 1 and {MAX_UPLOAD_BYTES} (9 GB), got {size}.", param="bytes"
        )
    purpose = check_purpose(request, body["purpose"])
    now = ctx.clock.now()
    doc: dict[str, Any] = {
        "object": "upload",
        "id": new_id("upload"),
        "created_at": int(now),
        "bytes": size,
        "filename": body["filename"],
        "purpose": purpose,
        "status": "pending",
        "expires_at": int(now + EXPIRES_SECONDS),
        "file": None,
        "_parts": [],
        "_received": 0,
    }
    ctx.store.put("upload", doc["id"], doc)
    return json_response(public(doc), headers={"Location": location(request, f"/uploads/{doc['id']}")})


async def _read_data_field(request: web.Request) -> bytes | None:
    """The 'data' field of a part, bounded in size and in the wait for each chunk (files.read_part)."""
    async with asyncio.timeout(CHUNK_WAIT_SECONDS):
        reader = await request.multipart()
    data: bytes | None = None
    while True:
        async with asyncio.timeout(CHUNK_WAIT_SECONDS):
            field = await reader.next()
        if field is None:
            return data
        if not isinstance(field, aiohttp.BodyPartReader):
            continue
        limit = MAX_PART_BYTES if field.name == "data" else MAX_FIELD_BYTES
        value = await read_part(
            field,
            limit,
            lambda: DataPlaneError(
                413,
                "invalidPayload",
                f"A part may be at most {MAX_PART_BYTES // (1024 * 1024)} MB.",
                param="data",
            ),
        )
        if field.name == "data":
            data = value


async def add_part(request: web.Request) -> web.Response:
    ctx = context(request)
    upload_id = request.match_info["upload_id"]
    _require_pending(_current(ctx, upload_id), "add a part to")
    if not request.content_type.startswith("multipart/"):
        raise invalid_payload("A part is sent as multipart/form-data with the field 'data'.", param="data")
    try:
        data = await _read_data_field(request)
    except MALFORMED_MULTIPART as exc:
        raise invalid_payload(f"The multipart/form-data body is malformed: {first_line(exc)}") from None
    except TimeoutError:
        raise DataPlaneError(
            408, "timeout", f"The part stalled: no data for {CHUNK_WAIT_SECONDS:g} seconds."
        ) from None
    if data is None:
        raise invalid_payload("The form field 'data' is required.", param="data")
    # Read again after the body arrived: the Upload may have been cancelled meanwhile.
    doc = _current(ctx, upload_id)
    _require_pending(doc, "add a part to")
    if len(doc["_parts"]) >= MAX_PARTS:
        raise invalid_payload(
            f"Upload {upload_id} already has {MAX_PARTS} parts, the most an Upload may have."
        )
    if int(doc["_received"]) + len(data) > MAX_UPLOAD_BYTES:
        raise invalid_payload(f"Upload {upload_id} would hold more than {MAX_UPLOAD_BYTES} bytes (9 GB).")
    part_id = new_id("part")
    part: dict[str, Any] = {
        "object": "upload.part",
        "id": part_id,
        "created_at": int(ctx.clock.now()),
        "upload_id": upload_id,
        "azure_block_id": base64.b64encode(part_id.encode()).decode(),
        "_bytes": len(data),
        "_md5": hashlib.md5(data).hexdigest(),  # the API's checksum, not a security measure
    }
    doc["_parts"].append(part_id)
    doc["_received"] = int(doc["_received"]) + len(data)
    with ctx.store.transaction():
        ctx.store.put_blob(part_id, data)
        ctx.store.put("upload_part", part_id, part)
        ctx.store.put("upload", upload_id, doc)
    return json_response(public(part))


async def complete_upload(request: web.Request) -> web.Response:
    ctx = context(request)
    upload_id = request.match_info["upload_id"]
    body = await json_body(request)
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list) or not part_ids or not all(isinstance(p, str) for p in part_ids):
        raise invalid_payload(
            "The field 'part_ids' is required: the ids of the parts, in file order.", param="part_ids"
        )
    md5 = body.get("md5")
    if md5 is not None and not isinstance(md5, str):
        raise invalid_payload("The field 'md5' must be a string.", param="md5")
    doc = _current(ctx, upload_id)
    _require_pending(doc, "complete")
    if len(set(part_ids)) != len(part_ids):
        raise invalid_payload("The field 'part_ids' names a part more than once.", param="part_ids")
    known = set(doc["_parts"])
    unknown = [p for p in part_ids if p not in known]
    if unknown:
        raise invalid_payload(f"Part {unknown[0]} is not a part of Upload {upload_id}.", param="part_ids")
    sizes = [int(ctx.store.get("upload_part", p)["_bytes"]) for p in part_ids]  # type: ignore[index]
    if sum(sizes) != doc["bytes"]:
        raise invalid_payload(
            f"The parts hold {sum(sizes)} bytes; Upload {upload_id} was created for {doc['bytes']} bytes.",
            param="part_ids",
        )
    file_doc = await asyncio.to_thread(_make_file, ctx, doc, part_ids, md5)
    return json_response(public(file_doc))


def _make_file(
    ctx: EmulatorContext, doc: dict[str, Any], part_ids: list[str], md5: str | None
) -> dict[str, Any]:
    """Join the parts into a File (checked like a direct upload); the Upload becomes completed."""
    data = b"".join(ctx.store.get_blob(p) or b"" for p in part_ids)
    if md5 is not None and hashlib.md5(data).hexdigest() != md5.lower():
        raise invalid_payload("The md5 given does not match the parts' content.", param="md5")
    if len(data) > MAX_FILE_BYTES:
        raise invalid_payload(
            f"The file would be {len(data)} bytes; files may be at most "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB.",
            param="part_ids",
        )
    file = store_new_file(ctx, purpose=doc["purpose"], filename=doc["filename"], data=data)
    del data
    doc["status"] = "completed"
    doc["file"] = public(file)
    with ctx.store.transaction():
        _drop_parts(ctx, doc)
        ctx.store.put("upload", doc["id"], doc)
    return doc


async def cancel_upload(request: web.Request) -> web.Response:
    ctx = context(request)
    doc = _current(ctx, request.match_info["upload_id"])
    _require_pending(doc, "cancel")
    doc["status"] = "cancelled"
    with ctx.store.transaction():
        _drop_parts(ctx, doc)
        ctx.store.put("upload", doc["id"], doc)
    return json_response(public(doc))
