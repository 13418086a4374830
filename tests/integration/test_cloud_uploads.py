"""Large files go up in parts through /uploads and resume after a crash or a lost connection.

``AzureCloud`` against the real emulator over HTTP. Small part sizes keep most tests to
kilobytes; the last test kills a real process halfway through a 300 MB upload and reruns it.
What the tests assert is what the account holds afterwards: one completed upload, a File with the
exact bytes, no upload left pending, and that the rerun sent only the parts that had not arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tunekeeper.cloud import CloudSettings, connect
from tunekeeper.emulator.dataplane.uploads import uploads_in
from tunekeeper.errors import TransientCloudError

from .cloud_helpers import TEST_API_KEY, account_for

BOM = b"\xef\xbb\xbf"


def write_lines(path: Path, examples: int) -> bytes:
    data = "".join(json.dumps({"messages": [
        {"role": "user", "content": f"Question number {i}: what does the paperclip say?"},
        {"role": "assistant", "content": f"It looks like you are writing letter {i}."},
    ]}) + "\n" for i in range(examples)).encode()
    path.write_bytes(data)
    return data


def settings(tmp_path: Path, *, part_size: int = 4096, records: bool = True, **extra: Any) -> CloudSettings:
    return CloudSettings(multipart_above=8192, part_size=part_size,
                         upload_records=tmp_path / "uploads" if records else None, **extra)


async def upload(emulator: Any, path: Path, cloud_settings: CloudSettings, **kwargs: Any) -> Any:
    cloud = await connect(account_for(emulator), api_key=TEST_API_KEY, settings=cloud_settings)
    try:
        file = await cloud.upload_file(path, filename=path.name, add_bom=True, **kwargs)
        return file, cloud._data.last_upload  # what the uploader sent (private: tests only)
    finally:
        await cloud.close()


def stored(emulator: Any, file_id: str) -> bytes:
    return emulator.store.get_blob(file_id) or b""


async def test_a_large_file_goes_up_in_parts_and_progress_counts_bytes(emulator: Any, tmp_path: Path) -> None:
    data = write_lines(tmp_path / "train.jsonl", 300)
    seen: list[tuple[int, int]] = []

    file, uploader = await upload(emulator, tmp_path / "train.jsonl", settings(tmp_path),
                                  on_progress=lambda done, total: seen.append((done, total)))

    assert stored(emulator, file.id) == BOM + data
    assert uploader.parts_sent == -(-(len(data) + 3) // 4096) > 2
    assert [u["status"] for u in uploads_in(emulator.store)] == ["completed"]
    assert seen[-1] == (len(data) + 3, len(data) + 3)
    assert all(total == len(data) + 3 for _, total in seen)
    assert not list((tmp_path / "uploads").iterdir())  # the record goes with the completed upload


async def test_a_small_file_keeps_the_single_request(emulator: Any, tmp_path: Path) -> None:
    write_lines(tmp_path / "small.jsonl", 20)

    file, uploader = await upload(emulator, tmp_path / "small.jsonl", settings(tmp_path))

    assert uploader is None and uploads_in(emulator.store) == []
    assert stored(emulator, file.id).startswith(BOM)


async def test_a_lost_connection_is_resumed_by_the_rerun(emulator: Any, tmp_path: Path) -> None:
    """After the fifth part every part request is dropped, past the SDK's retries: the run fails
    with a transient error and keeps its record; the rerun sends only the parts that had not arrived."""
    data = write_lines(tmp_path / "train.jsonl", 300)
    parts = -(-(len(data) + 3) // 4096)
    armed = False

    def drop_after_five(done: int, total: int) -> None:
        nonlocal armed
        if done > 5 * 4096 and not armed:  # the sixth part is being read: five arrived
            armed = True
            emulator.faults.add("POST /openai/uploads/*/parts", drop=True)

    with pytest.raises(TransientCloudError):
        await upload(emulator, tmp_path / "train.jsonl", settings(tmp_path, max_retries=1),
                     on_progress=drop_after_five)
    (pending,) = uploads_in(emulator.store)
    arrived = len(pending["_parts"])
    assert pending["status"] == "pending" and 5 <= arrived < parts

    emulator.faults.clear()
    file, uploader = await upload(emulator, tmp_path / "train.jsonl", settings(tmp_path))

    assert uploader.parts_sent == parts - arrived
    assert stored(emulator, file.id) == BOM + data
    assert [u["status"] for u in uploads_in(emulator.store)] == ["completed"]


async def test_a_changed_file_or_a_forgotten_upload_starts_afresh(emulator: Any, tmp_path: Path) -> None:
    """The service judges the record: an upload it cancelled cannot be resumed, so the rerun
    starts a new one; a part whose bytes changed since is sent again."""
    path = tmp_path / "train.jsonl"
    data = write_lines(path, 300)

    def crash(done: int, total: int) -> None:
        if done >= 3 * 4096:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await upload(emulator, path, settings(tmp_path), on_progress=crash)
    (first,) = uploads_in(emulator.store)
    emulator.store.put("upload", first["id"], {**first, "status": "cancelled"})

    changed = data.replace(b"Question number 1:", b"Question NUMBER 1:")
    path.write_bytes(changed)
    file, uploader = await upload(emulator, path, settings(tmp_path))

    assert stored(emulator, file.id) == BOM + changed
    assert uploader.parts_sent == -(-(len(data) + 3) // 4096)
    assert [u["status"] for u in uploads_in(emulator.store)] == ["cancelled", "completed"]


async def test_without_records_a_failed_upload_is_cancelled(emulator: Any, tmp_path: Path) -> None:
    write_lines(tmp_path / "train.jsonl", 300)

    def crash(done: int, total: int) -> None:
        if done >= 3 * 4096:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await upload(emulator, tmp_path / "train.jsonl", settings(tmp_path, records=False), on_progress=crash)

    assert [u["status"] for u in uploads_in(emulator.store)] == ["cancelled"]


async def test_records_past_their_expiry_are_swept(emulator: Any, tmp_path: Path) -> None:
    records = tmp_path / "uploads"
    records.mkdir()
    stale = records / "upload-0.json"
    stale.write_bytes(json.dumps({
        "version": 1, "endpoint": "e", "filename": "old.jsonl", "purpose": "fine-tune", "size": 1,
        "part_size": 1, "upload_id": "upload-0", "expires_at": 1.0, "parts": {}}).encode())
    write_lines(tmp_path / "train.jsonl", 300)

    await upload(emulator, tmp_path / "train.jsonl", settings(tmp_path))

    assert not stale.exists()


KILLED_UPLOAD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from tunekeeper.cloud import CloudSettings, connect
    from tunekeeper.resources.specs import AccountSpec, AuthSpec

    endpoint, key, path, records = sys.argv[1:5]
    account = AccountSpec(name="emulator", endpoint=endpoint, management_endpoint=endpoint,
                          subscription_id="s", resource_group="g", account_name="a",
                          auth=AuthSpec(kind="apiKey", api_key_env="UNUSED"))

    def progress(done, total):
        print(done, total, flush=True)

    async def main():
        cloud = await connect(account, api_key=key, settings=CloudSettings(upload_records=Path(records)))
        await cloud.upload_file(Path(path), filename="big.jsonl", add_bom=True, on_progress=progress)

    asyncio.run(main())
""")


def write_300_mb(path: Path) -> None:
    line = json.dumps({"messages": [{"role": "user", "content": "x" * 900},
                                    {"role": "assistant", "content": "y" * 60}]}).encode()
    count = 300 * 1000**2 // (len(line) + 9)
    with open(path, "wb") as out:
        out.writelines(line[:-3] + b"%08d" % i + line[-3:] + b"\n" for i in range(count))


@pytest.mark.slow
def test_a_killed_300_mb_upload_resumes_with_only_the_missing_parts(emulator: Any, tmp_path: Path) -> None:
    """The uploading process is killed (SIGKILL) halfway through a generated 300 MB file; the rerun
    sends only the parts that had not arrived, and the account ends with one completed upload,
    the exact file, and nothing pending."""
    path = tmp_path / "big.jsonl"
    write_300_mb(path)
    size = path.stat().st_size + len(BOM)
    part_size = CloudSettings().part_size
    parts = -(-size // part_size)
    # Slow the parts down (0.2 s each) so that the kill lands halfway, not after the end.
    emulator.faults.add("POST /openai/uploads/*/parts", latency=0.2)
    records = tmp_path / "uploads"
    child = subprocess.Popen([sys.executable, "-c", KILLED_UPLOAD, emulator.url, TEST_API_KEY, str(path),
                              str(records)], stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert child.stdout is not None
    for progress in child.stdout:  # parts go one after the other: once part k+1 is being read, k arrived
        if int(progress.split()[0]) > parts // 2 * part_size:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    (pending,) = uploads_in(emulator.store)
    recorded = len(json.loads(next(records.iterdir()).read_bytes())["parts"])
    assert pending["status"] == "pending" and parts // 2 <= recorded < parts

    emulator.faults.clear()
    file, uploader = asyncio.run(upload(emulator, path, CloudSettings(upload_records=records)))

    assert uploader.parts_sent == parts - recorded
    assert file.bytes == size
    assert [u["status"] for u in uploads_in(emulator.store)] == ["completed"]
    assert stored(emulator, file.id) == BOM + path.read_bytes()
    assert not list(records.iterdir())
