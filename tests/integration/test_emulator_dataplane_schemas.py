"""Every data-plane operation, on both served api-versions, answers with bodies that Microsoft's
published documents accept (``checked_openai_client`` validates each response; see conftest).

Also checks the checker: Microsoft's own examples pass it, and a body that breaks the contract
is reported. Skips when ../shared/reference/azure is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

BASE = "gpt-4o-mini-2024-07-18"
OPERATIONS = {  # example file -> (method, path, status)
    "get_file.json": ("GET", "/openai/files/file-1", 200),
    "get_files.json": ("GET", "/openai/files", 200),
    "upload_file.json": ("POST", "/openai/files", 201),
    "import_file.json": ("POST", "/openai/files/import", 201),
    "delete_file.json": ("DELETE", "/openai/files/file-1", 200),
    "get_finetuning_job.json": ("GET", "/openai/fine_tuning/jobs/ftjob-1", 200),
    "get_finetuning_jobs.json": ("GET", "/openai/fine_tuning/jobs", 200),
    "post_finetuning_job.json": ("POST", "/openai/fine_tuning/jobs", 201),
    "cancel_finetuning_job.json": ("POST", "/openai/fine_tuning/jobs/ftjob-1/cancel", 200),
    "pause_finetuning_job.json": ("POST", "/openai/fine_tuning/jobs/ftjob-1/pause", 200),
    "resume_finetuning_job.json": ("POST", "/openai/fine_tuning/jobs/ftjob-1/resume", 200),
    "get_finetuning_job_events.json": ("GET", "/openai/fine_tuning/jobs/ftjob-1/events", 200),
    "get_finetuning_job_checkpoints.json": ("GET", "/openai/fine_tuning/jobs/ftjob-1/checkpoints", 200),
    "get_models.json": ("GET", "/openai/models", 200),
    "get_model_base.json": ("GET", "/openai/models/curie", 200),
    "get_model_finetune.json": ("GET", "/openai/models/curie.ft-1", 200),
}


def _data(n: int) -> bytes:
    return "".join(json.dumps({"messages": [
        {"role": "user", "content": f"Ping {i}"}, {"role": "assistant", "content": f"Pong {i}"}]}) + "\n"
        for i in range(n)).encode()


@pytest.fixture
def contracts(reference_dir: Path, dataplane_contracts: dict[str, Any]) -> dict[str, Any]:
    assert set(dataplane_contracts) == {"2024-10-21", "2025-04-01-preview"}
    return dataplane_contracts


def test_microsofts_examples_pass_the_checker(reference_dir: Path, contracts: dict[str, Any]) -> None:
    checked = 0
    for version, contract in contracts.items():
        for example in sorted((reference_dir / "dataplane" / version / "examples").glob("*.json")):
            if example.name not in OPERATIONS:
                continue
            method, path, status = OPERATIONS[example.name]
            body = json.loads(example.read_text())["responses"][str(status)]["body"]
            assert contract.errors(method, path, status, body) == [], example
            checked += 1
    assert checked >= 20


def test_the_checker_reports_a_broken_body(contracts: dict[str, Any]) -> None:
    contract = contracts["2025-04-01-preview"]
    broken = {"object": "file", "id": "file-1", "status": "finished", "purpose": "fine-tune", "filename": 7}

    problems = contract.errors("GET", "/openai/files/file-1", 200, broken)

    assert any("status" in p for p in problems) and any("filename" in p for p in problems)
    assert contract.errors("GET", "/openai/files", 404, {"error": {"message": "x"}})  # code is required


@pytest.mark.parametrize("api_version", ["2024-10-21", "2025-04-01-preview"])
def test_every_operation_matches_the_published_contract(
    emulator: Any, checked_openai_client: openai.AzureOpenAI, contracts: dict[str, Any], api_version: str,
) -> None:
    client = checked_openai_client.with_options(api_version=api_version)
    preview = api_version.endswith("preview")
    train = client.files.create(file=("train.jsonl", _data(12)), purpose="fine-tune")
    valid = client.files.create(file=("valid.jsonl", _data(10)), purpose="fine-tune")
    bad = client.files.create(file=("bad.jsonl", b"{not json\n"), purpose="fine-tune")
    emulator.clock.advance(60)
    client.files.list()
    client.files.list(purpose="fine-tune")
    client.files.retrieve(bad.id)
    client.files.content(train.id)

    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, validation_file=valid.id, seed=1,
                                         suffix="contract")
    other = client.fine_tuning.jobs.create(model=BASE, training_file=train.id)
    emulator.clock.advance(0.2)
    if preview:
        client.fine_tuning.jobs.pause(other.id)
        client.fine_tuning.jobs.resume(other.id)
    client.fine_tuning.jobs.cancel(other.id)
    client.fine_tuning.jobs.list_events(job.id)
    client.fine_tuning.jobs.checkpoints.list(job.id)
    emulator.clock.advance(3600)
    done = client.fine_tuning.jobs.retrieve(job.id)
    client.fine_tuning.jobs.list()
    client.fine_tuning.jobs.list_events(job.id, limit=100)
    client.fine_tuning.jobs.checkpoints.list(job.id)
    client.models.list()
    client.models.retrieve(BASE)
    client.models.retrieve(done.fine_tuned_model or "")
    client.files.retrieve(done.result_files[0])

    # errors carry the ErrorResponse shape too
    for call in (
        lambda: client.files.retrieve("file-missing"),
        lambda: client.fine_tuning.jobs.create(model="gpt-9", training_file=train.id),
        lambda: client.fine_tuning.jobs.create(model=BASE, training_file=bad.id),
        lambda: client.fine_tuning.jobs.cancel(job.id),
        lambda: client.post("/files/import", cast_to=httpx.Response, body={
            "purpose": "fine-tune", "filename": "x.jsonl", "content_url": "https://example.com/x.jsonl"}),
    ):
        with pytest.raises(openai.APIStatusError):
            call()
    assert client.fine_tuning.jobs.retrieve(other.id).status == "cancelled"
    assert client.delete(f"/fine_tuning/jobs/{other.id}", cast_to=httpx.Response).status_code == 204
    client.files.delete(bad.id)


@pytest.mark.parametrize("api_version", ["2024-10-21", "2025-04-01-preview"])
def test_uploads_match_the_published_contract(
    emulator: Any, checked_openai_client: openai.AzureOpenAI, contracts: dict[str, Any], api_version: str,
) -> None:
    """/uploads: create, add parts, complete (with the File inside), cancel, and their errors."""
    client = checked_openai_client.with_options(api_version=api_version)
    data = _data(12)
    upload = client.uploads.create(bytes=len(data), filename="train.jsonl", mime_type="text/jsonl",
                                   purpose="fine-tune")
    first = client.uploads.parts.create(upload.id, data=data[:100])
    second = client.uploads.parts.create(upload.id, data=data[100:])
    done = client.uploads.complete(upload.id, part_ids=[first.id, second.id])
    assert done.status == "completed" and done.file is not None
    dropped = client.uploads.create(bytes=10, filename="x.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    assert client.uploads.cancel(dropped.id).status == "cancelled"
    for call in (
        lambda: client.uploads.parts.create(dropped.id, data=b"late"),
        lambda: client.uploads.complete(upload.id, part_ids=[first.id]),
        lambda: client.uploads.cancel("upload-missing"),
        lambda: client.uploads.create(bytes=0, filename="x.jsonl", mime_type="text/jsonl",
                                      purpose="fine-tune"),
    ):
        with pytest.raises(openai.APIStatusError):
            call()
