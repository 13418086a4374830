"""The emulator's large uploads (``/uploads``) through the openai SDK's uploads client, on both
api-versions: parts become a File checked like a direct upload; Azure's limits and states hold.

Response shapes are checked against the published specs in test_emulator_dataplane_schemas.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import openai
import pytest
from tunekeeper.emulator.dataplane import uploads
from tunekeeper.emulator.dataplane.uploads import uploads_in

VERSIONS = ["2024-10-21", "2025-04-01-preview"]


def chat_lines(n: int) -> bytes:
    return "".join(json.dumps({"messages": [
        {"role": "user", "content": f"Ping {i}"}, {"role": "assistant", "content": f"Pong {i}"}]}) + "\n"
        for i in range(n)).encode()


def start(client: openai.AzureOpenAI, data: bytes, name: str = "train.jsonl") -> Any:
    return client.uploads.create(bytes=len(data), filename=name, mime_type="text/jsonl", purpose="fine-tune")


@pytest.mark.parametrize("api_version", VERSIONS)
def test_parts_become_a_file_in_the_order_named(
    emulator: Any, openai_client: openai.AzureOpenAI, api_version: str
) -> None:
    client = openai_client.with_options(api_version=api_version)
    data = chat_lines(30)
    upload = start(client, data)
    assert (upload.status, upload.bytes) == ("pending", len(data))
    assert upload.expires_at - upload.created_at == 7200
    cut = [0, 500, 1200, len(data)]
    parts = [client.uploads.parts.create(upload.id, data=data[a:b]) for a, b in itertools.pairwise(cut)]
    assert all(p.upload_id == upload.id and p.object == "upload.part" for p in parts)

    done = client.uploads.complete(upload.id, part_ids=[p.id for p in parts],
                                   md5=hashlib.md5(data).hexdigest())

    assert done.status == "completed" and done.file is not None
    assert (done.file.filename, done.file.bytes, done.file.purpose) == ("train.jsonl", len(data), "fine-tune")
    emulator.clock.advance(60)
    assert client.files.retrieve(done.file.id).status == "processed"
    assert client.files.content(done.file.id).content == data
    assert [u["status"] for u in uploads_in(emulator.store)] == ["completed"]


def test_complete_checks_parts_bytes_and_checksum(emulator: Any, openai_client: openai.AzureOpenAI) -> None:
    data = chat_lines(12)
    upload = start(openai_client, data)
    head = openai_client.uploads.parts.create(upload.id, data=data[:100])
    tail = openai_client.uploads.parts.create(upload.id, data=data[100:])
    other = start(openai_client, data)
    foreign = openai_client.uploads.parts.create(other.id, data=data)

    for part_ids, md5, says in (
        ([head.id], None, "bytes"),
        ([head.id, tail.id, head.id], None, "more than once"),
        ([head.id, foreign.id], None, "not a part"),
        ([head.id, tail.id], "0" * 32, "md5"),
    ):
        with pytest.raises(openai.BadRequestError) as error:
            if md5 is None:
                openai_client.uploads.complete(upload.id, part_ids=part_ids)
            else:
                openai_client.uploads.complete(upload.id, part_ids=part_ids, md5=md5)
        assert says in str(error.value)
    assert openai_client.uploads.complete(upload.id, part_ids=[head.id, tail.id]).status == "completed"
    with pytest.raises(openai.BadRequestError, match="completed"):
        openai_client.uploads.complete(upload.id, part_ids=[head.id, tail.id])


def test_cancel_drops_the_parts_and_closes_the_upload(
    emulator: Any, openai_client: openai.AzureOpenAI
) -> None:
    upload = start(openai_client, b"x" * 10)
    part = openai_client.uploads.parts.create(upload.id, data=b"x" * 4)

    assert openai_client.uploads.cancel(upload.id).status == "cancelled"

    assert emulator.store.get_blob(part.id) is None
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        openai_client.uploads.parts.create(upload.id, data=b"x" * 6)
    with pytest.raises(openai.NotFoundError):
        openai_client.uploads.cancel("upload-0")


def test_an_upload_expires_two_hours_after_creation(emulator: Any, openai_client: openai.AzureOpenAI) -> None:
    upload = start(openai_client, b"x" * 10)
    part = openai_client.uploads.parts.create(upload.id, data=b"x" * 10)
    emulator.clock.advance(2 * 3600 + 1)

    with pytest.raises(openai.BadRequestError, match="expired"):
        openai_client.uploads.complete(upload.id, part_ids=[part.id])
    assert emulator.store.get_blob(part.id) is None


def test_azures_limits_on_size_parts_and_part_size(
    emulator: Any, openai_client: openai.AzureOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(openai.BadRequestError, match="9 GB"):
        openai_client.uploads.create(bytes=9 * 1000**3 + 1, filename="big.jsonl", mime_type="text/jsonl",
                                     purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        openai_client.uploads.create(bytes=10, filename="r.csv", mime_type="text/csv",
                                     purpose="fine-tune-results")  # type: ignore[arg-type]
    # The real limits (50,000 parts, 512 MB a part) scaled down, so the test sends bytes, not gigabytes.
    monkeypatch.setattr(uploads, "MAX_PARTS", 2)
    monkeypatch.setattr(uploads, "MAX_PART_BYTES", 8)
    upload = start(openai_client, b"x" * 20)
    with pytest.raises(openai.APIStatusError, match="at most") as too_big:
        openai_client.uploads.parts.create(upload.id, data=b"x" * 9)
    assert too_big.value.status_code == 413
    for _ in range(2):
        openai_client.uploads.parts.create(upload.id, data=b"x" * 8)
    with pytest.raises(openai.BadRequestError, match="2 parts"):
        openai_client.uploads.parts.create(upload.id, data=b"x" * 4)


def test_a_completed_upload_is_checked_like_a_direct_upload(
    emulator: Any, openai_client: openai.AzureOpenAI
) -> None:
    data = chat_lines(11) + b"not json\n"
    upload = start(openai_client, data, "broken.jsonl")
    part = openai_client.uploads.parts.create(upload.id, data=data)
    done = openai_client.uploads.complete(upload.id, part_ids=[part.id])
    assert done.file is not None
    emulator.clock.advance(60)
    got = openai_client.files.retrieve(done.file.id)
    assert got.status == "error" and "broken.jsonl:12" in (got.status_details or "")
