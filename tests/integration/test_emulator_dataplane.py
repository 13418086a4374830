"""The emulator's Azure OpenAI data plane, driven through the official ``openai.AzureOpenAI`` client.

Every response body is checked against Microsoft's published document for its api-version by
the ``checked_openai_client`` fixture (when ../shared/reference/azure is present). Time moves
with ``emulator.clock.advance``; nothing sleeps.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from azure.mgmt.cognitiveservices.models import Deployment, DeploymentModel, DeploymentProperties, Sku

STABLE_API_VERSION = "2024-10-21"
TEST_API_KEY = "test-key"  # as in tests/conftest.py

BASE = "gpt-4.1-2025-04-14"
HOUR = 3600.0
RESULTS_HEADER = ("step,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,"
                  "full_valid_loss,full_valid_mean_token_accuracy")


# -- given ------------------------------------------------------------------------------------------
def chat_data(n: int, topic: str = "capital") -> bytes:
    countries = ["France", "Spain", "Italy", "Japan", "Peru", "Kenya", "Canada", "Chile", "Norway", "Egypt",
                 "India", "Brazil", "Ghana", "Nepal", "Cuba", "Iran", "Mali", "Laos", "Fiji", "Oman"]
    lines = []
    for i in range(n):
        country = countries[i % len(countries)] + ("" if i < len(countries) else f" {i}")
        lines.append(json.dumps({"messages": [
            {"role": "system", "content": "Clippy answers geography questions."},
            {"role": "user", "content": f"What is the {topic} of {country}?"},
            {"role": "assistant", "content": f"The {topic} of {country} is answer-{i}."},
        ]}))
    return ("\n".join(lines) + "\n").encode()


def dpo_data(n: int) -> bytes:
    lines = [json.dumps({
        "input": {"messages": [{"role": "user", "content": f"Say hello number {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"Hello {i}!"}],
        "non_preferred_output": [{"role": "assistant", "content": f"Go away {i}."}],
    }) for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def upload(
    client: openai.AzureOpenAI, data: bytes, name: str = "train.jsonl", purpose: str = "fine-tune"
) -> Any:
    return client.files.create(file=(name, data), purpose=purpose)  # type: ignore[arg-type]


def processed(emulator: Any, client: openai.AzureOpenAI, data: bytes, name: str = "train.jsonl") -> str:
    uploaded = upload(client, data, name)
    emulator.clock.advance(60)
    assert client.files.retrieve(uploaded.id).status == "processed"
    return str(uploaded.id)


def finish(emulator: Any) -> None:
    emulator.clock.advance(24 * HOUR)


def deploy(arm_client: Any, emulator: Any, name: str, model: str, version: str = "1") -> None:
    arm_client.deployments.begin_create_or_update(
        emulator.config.resource_group,
        emulator.config.account_name,
        name,
        Deployment(
            sku=Sku(name="Standard", capacity=1),
            properties=DeploymentProperties(
                model=DeploymentModel(format="OpenAI", name=model, version=version)
            ),
        ),
    ).result()


def delete_job(client: openai.AzureOpenAI, job_id: str) -> httpx.Response:
    """FineTuning_Delete: in Azure's API, not in this openai release's resource methods."""
    return client.delete(f"/fine_tuning/jobs/{job_id}", cast_to=httpx.Response)


@pytest.fixture
def client(checked_openai_client: openai.AzureOpenAI) -> openai.AzureOpenAI:
    return checked_openai_client


@pytest.fixture
def stable(client: openai.AzureOpenAI) -> openai.AzureOpenAI:
    return client.with_options(api_version=STABLE_API_VERSION)


# -- files ------------------------------------------------------------------------------------------
def test_upload_reads_pending_then_processed_with_location(emulator: Any, client: openai.AzureOpenAI) -> None:
    raw = client.files.with_raw_response.create(file=("train.jsonl", chat_data(12)), purpose="fine-tune")
    created = raw.parse()
    assert raw.status_code == 201
    assert raw.headers["location"] == f"{emulator.url}/openai/files/{created.id}"
    assert raw.headers["apim-request-id"]
    assert re.fullmatch(r"file-[0-9a-f]{32}", created.id)
    assert (created.status, created.bytes, created.filename) == ("pending", len(chat_data(12)), "train.jsonl")

    emulator.clock.advance(60)

    assert client.files.retrieve(created.id).status == "processed"
    assert client.files.content(created.id).content == chat_data(12)


def test_an_upload_with_one_huge_example_is_checked_in_bounded_time(
    emulator: Any, client: openai.AzureOpenAI
) -> None:
    """12 MB of text in one example is over every context by its length alone: the upload check
    reports it without tokenizing it (before, such a line took the check minutes and gigabytes)."""
    huge = b'{"messages": [{"role": "user", "content": "' + b"hello " * 2_000_000 + \
        b'"}, {"role": "assistant", "content": "ok"}]}\n'
    created = upload(client, chat_data(12) + huge, "huge.jsonl")
    emulator.clock.advance(600)

    got = client.files.retrieve(created.id)
    assert got.status == "error"
    assert got.status_details and "huge.jsonl:13" in got.status_details and "at least" in got.status_details


def test_invalid_training_file_ends_in_error_with_details(emulator: Any, client: openai.AzureOpenAI) -> None:
    bad = chat_data(11) + b'{"messages": [{"role": "user", "content": "no answer"}]}\nnot json\n'
    created = upload(client, bad, "broken.jsonl")
    emulator.clock.advance(60)

    got = client.files.retrieve(created.id)
    assert got.status == "error"
    assert got.status_details and "broken.jsonl:12" in got.status_details
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model=BASE, training_file=created.id)
    assert err.value.body["code"] == "jsonlValidationFailed"  # type: ignore[index]


def test_list_files_filters_orders_and_pages(emulator: Any, client: openai.AzureOpenAI) -> None:
    ids = [upload(client, chat_data(10), f"f{i}.jsonl").id for i in range(3)]
    other = upload(client, b'{"custom_id": "1"}\n', "batch.jsonl", purpose="batch").id

    assert [f.id for f in client.files.list(purpose="fine-tune").data] == ids[::-1]
    assert [f.id for f in client.files.list(purpose="fine-tune", order="asc").data] == ids
    first = client.files.list(order="asc", limit=2)
    assert [f.id for f in first.data] == ids[:2]
    assert [f.id for f in client.files.list(order="asc", limit=2, after=ids[1]).data] == [ids[2], other]


def test_delete_file_then_it_is_gone(emulator: Any, client: openai.AzureOpenAI) -> None:
    file_id = upload(client, chat_data(10)).id

    deleted = client.files.delete(file_id)

    assert (deleted.id, deleted.deleted, deleted.object) == (file_id, True, "file")
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(file_id)
    assert err.value.body["code"] == "notFound"  # type: ignore[index]
    assert file_id not in [f.id for f in client.files.list().data]


def test_upload_rejects_service_purposes(client: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        upload(client, chat_data(10), purpose="fine-tune-results")
    assert err.value.body["code"] == "invalidPayload"  # type: ignore[index]


@pytest.fixture
def loopback_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1 (the standard library's), serving ``tmp_path``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def test_import_from_loopback_url(emulator: Any, client: openai.AzureOpenAI,
                                  loopback_files: tuple[str, Path]) -> None:
    base_url, folder = loopback_files
    (folder / "remote.jsonl").write_bytes(chat_data(10))

    imported = client.post("/files/import", cast_to=httpx.Response, body={
        "purpose": "fine-tune", "filename": "remote.jsonl", "content_url": f"{base_url}/remote.jsonl"})

    assert imported.status_code == 201
    file_id = imported.json()["id"]
    emulator.clock.advance(60)
    assert client.files.retrieve(file_id).status == "processed"
    assert client.files.content(file_id).content == chat_data(10)


@pytest.mark.parametrize("url", [
    "https://example.com/train.jsonl",
    "http://10.0.0.1/train.jsonl",
    "file:///etc/passwd",
    "ftp://127.0.0.1/train.jsonl",
])
def test_import_refuses_anything_but_local_sources(client: openai.AzureOpenAI, url: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/files/import", cast_to=httpx.Response,
                    body={"purpose": "fine-tune", "filename": "x.jsonl", "content_url": url})
    assert err.value.body["code"] == "fileImportFailed"  # type: ignore[index]
    assert client.files.list().data == []


def test_import_from_file_url_under_the_data_dir(tmp_path: Path) -> None:
    from tunekeeper.emulator import Emulator

    data_dir = tmp_path / "state"
    with Emulator(data_dir=data_dir, api_key=TEST_API_KEY, speed=1000.0) as emu:
        (data_dir / "inbox").mkdir()
        (data_dir / "inbox" / "train.jsonl").write_bytes(chat_data(10))
        (tmp_path / "outside.jsonl").write_bytes(chat_data(10))
        client = openai.AzureOpenAI(azure_endpoint=emu.url, api_key=TEST_API_KEY,
                                    api_version="2025-04-01-preview", max_retries=0)
        inside = client.post("/files/import", cast_to=httpx.Response, body={
            "purpose": "fine-tune", "filename": "train.jsonl",
            "content_url": (data_dir / "inbox" / "train.jsonl").as_uri()})
        assert inside.status_code == 201
        with pytest.raises(openai.BadRequestError):
            client.post(
                "/files/import",
                cast_to=httpx.Response,
                body={
                    "purpose": "fine-tune",
                    "filename": "x.jsonl",
                    "content_url": (tmp_path / "outside.jsonl").as_uri(),
                },
            )
        client.close()


# -- jobs -------------------------------------------------------------------------------------------
def test_job_runs_from_pending_to_succeeded(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(30))
    valid = processed(emulator, client, chat_data(10, "flag"), "valid.jsonl")

    raw = client.fine_tuning.jobs.with_raw_response.create(
        model=BASE, training_file=train, validation_file=valid, seed=105, suffix="clippy")
    job = raw.parse()
    assert raw.status_code == 201
    assert raw.headers["location"].endswith(f"/openai/fine_tuning/jobs/{job.id}")
    assert re.fullmatch(r"ftjob-[0-9a-f]{32}", job.id)
    assert (job.status, job.seed, job.fine_tuned_model) == ("pending", 105, None)
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (3, 1)  # auto, resolved

    emulator.clock.advance(0.1)  # 100 s at speed 1000: past the queue
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"

    finish(emulator)
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model == f"{BASE}.ft-{job.id.removeprefix('ftjob-')}-clippy"
    assert done.finished_at and done.trained_tokens and done.trained_tokens > 0
    assert len(done.result_files) == 1

    results = client.files.retrieve(done.result_files[0])
    assert (results.purpose, results.filename, results.status) == (
        "fine-tune-results",
        "results.csv",
        "processed",
    )
    text = client.files.content(results.id).text
    assert text.splitlines()[0] == RESULTS_HEADER
    assert len(text.splitlines()) == 1 + 30 * 3

    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data][::-1]
    assert messages[0] == "Job enqueued. Waiting for jobs ahead to complete."
    assert messages[1] == "Job started."
    assert messages[-1] == "Job succeeded."
    assert any(m.startswith("Step 90/90: training loss=") for m in messages)
    assert sum(m.startswith("Checkpoint created at step") for m in messages) == 3


def test_checkpoints_one_per_epoch_last_three_kept(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(20))
    valid = processed(emulator, client, chat_data(10, "flag"), "valid.jsonl")
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train, validation_file=valid,
                                         hyperparameters={"n_epochs": 5, "batch_size": 4})
    finish(emulator)

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data

    assert [c.step_number for c in checkpoints] == [25, 20, 15]  # newest first; epochs 1 and 2 pruned
    hexid = job.id.removeprefix("ftjob-")
    for c in checkpoints:
        assert re.fullmatch(r"ftchkpt-[0-9a-f]{32}", c.id)
        assert c.fine_tuned_model_checkpoint == f"{BASE}.ft-{hexid}:ckpt-step-{c.step_number}"
        assert c.fine_tuning_job_id == job.id
        assert set(c.metrics.to_dict()) == {"step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                                            "valid_mean_token_accuracy", "full_valid_loss",
                                            "full_valid_mean_token_accuracy"}
    page = client.fine_tuning.jobs.checkpoints.list(job.id, limit=1, after=checkpoints[0].id)
    assert [c.id for c in page.data] == [checkpoints[1].id]


def test_checkpoints_appear_while_training(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(20))
    # at speed 1 the clock moves only when told to (a real second is a simulated one), so how long the
    # requests below take cannot carry the job into its next epoch
    original, emulator.clock.speed = emulator.clock.speed, 1.0
    try:
        job = client.fine_tuning.jobs.create(model=BASE, training_file=train, hyperparameters={"n_epochs": 4})
        plan_epoch = 60 + 20 * 30 / 250  # roughly: epoch seconds at speed 1 for a small file
        emulator.clock.advance(60 + 30 + plan_epoch * 1.5)

        running = client.fine_tuning.jobs.retrieve(job.id)
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    finally:
        emulator.clock.speed = original

    assert running.status == "running"
    assert len(checkpoints) == 1


def test_same_seed_data_and_hyperparameters_give_same_metrics(
    emulator: Any, client: openai.AzureOpenAI
) -> None:
    train = processed(emulator, client, chat_data(20))
    valid = processed(emulator, client, chat_data(10, "flag"), "valid.jsonl")
    again = processed(emulator, client, chat_data(20), "copy.jsonl")  # same bytes, other file id
    params: dict[str, Any] = {"model": BASE, "validation_file": valid, "hyperparameters": {"n_epochs": 3}}
    a = client.fine_tuning.jobs.create(training_file=train, seed=7, **params)
    b = client.fine_tuning.jobs.create(training_file=again, seed=7, **params)
    c = client.fine_tuning.jobs.create(training_file=train, seed=8, **params)
    finish(emulator)

    def metrics(job_id: str) -> list[dict[str, float]]:
        return [cp.metrics.to_dict() for cp in client.fine_tuning.jobs.checkpoints.list(job_id).data]

    def results(job_id: str) -> str:
        return client.files.content(client.fine_tuning.jobs.retrieve(job_id).result_files[0]).text

    assert metrics(a.id) == metrics(b.id)
    assert results(a.id) == results(b.id)
    assert metrics(a.id) != metrics(c.id)


def _full_valid_losses(client: openai.AzureOpenAI, job_id: str) -> list[float]:
    job = client.fine_tuning.jobs.retrieve(job_id)
    rows = csv.DictReader(io.StringIO(client.files.content(job.result_files[0]).text))
    return [float(r["full_valid_loss"]) for r in rows if r["full_valid_loss"]]


def test_loss_falls_and_too_many_epochs_or_high_learning_rate_overfit(emulator: Any,
                                                                    client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(40))
    valid = processed(emulator, client, chat_data(10, "flag"), "valid.jsonl")
    common: dict[str, Any] = {"model": BASE, "training_file": train, "validation_file": valid, "seed": 3}
    normal = client.fine_tuning.jobs.create(hyperparameters={"n_epochs": 3, "batch_size": 4}, **common)
    long = client.fine_tuning.jobs.create(hyperparameters={"n_epochs": 15, "batch_size": 4}, **common)
    hot = client.fine_tuning.jobs.create(
        hyperparameters={"n_epochs": 5, "batch_size": 4, "learning_rate_multiplier": 2.0}, **common)
    finish(emulator)

    normal_curve = _full_valid_losses(client, normal.id)
    assert normal_curve == sorted(normal_curve, reverse=True)  # still improving every epoch
    for overfit in (long.id, hot.id):
        curve = _full_valid_losses(client, overfit)
        assert curve[-1] > min(curve) + 0.05, curve  # validation loss turned up

    text = client.files.content(client.fine_tuning.jobs.retrieve(normal.id).result_files[0]).text
    train_losses = [float(r["train_loss"]) for r in csv.DictReader(io.StringIO(text))]
    assert sum(train_losses[-5:]) < sum(train_losses[:5]) / 2


def test_cancel_a_running_job(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(20))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    emulator.clock.advance(0.1)

    cancelled = client.fine_tuning.jobs.cancel(job.id)
    finish(emulator)

    assert cancelled.status == "cancelled"
    later = client.fine_tuning.jobs.retrieve(job.id)
    assert (later.status, later.fine_tuned_model) == ("cancelled", None)
    assert client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].message == "Job cancelled."
    with pytest.raises(openai.ConflictError) as err:
        client.fine_tuning.jobs.cancel(job.id)
    assert err.value.body["code"] == "unexpectedEntityState"  # type: ignore[index]


def test_pause_and_resume(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(20))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train, hyperparameters={"n_epochs": 3})
    emulator.clock.advance(0.1)

    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    emulator.clock.advance(24 * HOUR)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"  # no progress while paused
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.pause(job.id)

    assert client.fine_tuning.jobs.resume(job.id).status == "resuming"
    emulator.clock.advance(0.031)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    finish(emulator)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
    assert "Job paused." in messages and "Job resumed." in messages


def test_pause_is_preview_only(emulator: Any, client: openai.AzureOpenAI, stable: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(20))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    emulator.clock.advance(0.1)
    with pytest.raises(openai.NotFoundError):
        stable.fine_tuning.jobs.pause(job.id)
    with pytest.raises(openai.BadRequestError):
        stable.fine_tuning.jobs.create(model=BASE, training_file=train, method={"type": "supervised"})


def test_list_jobs_newest_first_with_paging(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(10))
    ids = [client.fine_tuning.jobs.create(model=BASE, training_file=train).id for _ in range(3)]

    first = client.fine_tuning.jobs.list(limit=2)
    rest = client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)

    assert [j.id for j in first.data] == ids[::-1][:2] and first.has_more
    assert [j.id for j in rest.data] == [ids[0]] and not rest.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1)] == ids[::-1]  # iterating follows pages


def test_events_page_with_after(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(10))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    finish(emulator)

    everything = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=10_000).data]
    first = client.fine_tuning.jobs.list_events(job.id)
    paged = [e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=7)]

    assert len(first.data) == 20 and first.has_more
    assert paged == everything
    assert len(set(everything)) == len(everything)


@pytest.mark.parametrize(("changes", "field"), [
    ({"model": "gpt-9-turbo"}, "model"),
    ({"model": "gpt-4o-2024-05-13"}, "model"),
    ({"model": "gpt-4.1-nano-2025-04-14", "method": {"type": "dpo"}}, "method.type"),
    ({"model": "o4-mini-2025-04-16"}, "method.type"),
    ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs"),
    ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size"),
    ({"hyperparameters": {"batch_size": 257}}, "hyperparameters.batch_size"),
    ({"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier"),
    ({"hyperparameters": {"learning_rate_multiplier": -1.5}}, "hyperparameters.learning_rate_multiplier"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}}}, "hyperparameters.beta"),
    ({"suffix": "x" * 41}, "suffix"),
    ({"suffix": "no spaces"}, "suffix"),
    ({"seed": -1}, "seed"),
    ({"training_file": "file-00000000000000000000000000000000"}, "training_file"),
    ({"method": {"type": "reinforcement"}}, "method.type"),
])
def test_create_job_rejects_what_azure_rejects(emulator: Any, client: openai.AzureOpenAI,
                                                changes: dict[str, Any], field: str) -> None:
    train = processed(emulator, client, chat_data(12))
    body: dict[str, Any] = {"model": BASE, "training_file": train, **changes}

    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(**body)

    assert err.value.body["code"] == "invalidPayload"  # type: ignore[index]
    assert err.value.body["param"] == field  # type: ignore[index]
    assert client.fine_tuning.jobs.list().data == []


def test_create_job_waits_for_a_processed_file() -> None:
    from tunekeeper.emulator import Emulator

    # At this speed processing takes over half an hour of real time, so however slow the machine,
    # the file is still processing at the first create; only the test's advance finishes it.
    with Emulator(api_key=TEST_API_KEY, speed=0.001) as slow:
        client = openai.AzureOpenAI(azure_endpoint=slow.url, api_key=TEST_API_KEY,
                                    api_version="2025-04-01-preview", max_retries=0)
        fresh = upload(client, chat_data(10)).id

        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model=BASE, training_file=fresh)
        assert "not processed yet" in err.value.body["message"]  # type: ignore[index]

        slow.clock.advance(slow.clock.scaled(60))
        assert client.files.retrieve(fresh).status == "processed"
        assert client.fine_tuning.jobs.create(model=BASE, training_file=fresh).status == "pending"
        client.close()


def test_create_job_needs_ten_examples_and_a_fine_tune_file(
    emulator: Any, client: openai.AzureOpenAI
) -> None:
    small = upload(client, chat_data(9)).id  # the upload check already flags it
    batch = upload(client, b'{"custom_id": "1"}\n', "batch.jsonl", purpose="batch").id
    emulator.clock.advance(60)

    assert "at least 10" in (client.files.retrieve(small).status_details or "")
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model=BASE, training_file=small)
    assert "9 example(s)" in err.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model=BASE, training_file=batch)
    assert "purpose 'batch'" in err.value.body["message"]  # type: ignore[index]


def test_dpo_job_and_a_job_that_fails_on_its_data(emulator: Any, client: openai.AzureOpenAI) -> None:
    prefs = processed(emulator, client, dpo_data(12), "prefs.jsonl")
    chats = processed(emulator, client, chat_data(12))
    dpo = client.fine_tuning.jobs.create(model=BASE, training_file=prefs,
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    wrong = client.fine_tuning.jobs.create(model=BASE, training_file=chats, method={"type": "dpo"})
    assert dpo.method and dpo.method.dpo and dpo.method.dpo.hyperparameters.beta == 0.2

    finish(emulator)

    assert client.fine_tuning.jobs.retrieve(dpo.id).status == "succeeded"
    failed = client.fine_tuning.jobs.retrieve(wrong.id)
    assert failed.status == "failed" and failed.error and failed.error.message
    assert "dpo" in failed.error.message
    assert client.fine_tuning.jobs.list_events(wrong.id, limit=1).data[0].level == "error"


def test_continuous_fine_tuning_from_a_fine_tuned_model(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(10))
    first = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    with pytest.raises(openai.BadRequestError):  # not trained yet: no such model
        client.fine_tuning.jobs.create(
            model=f"{BASE}.ft-{first.id.removeprefix('ftjob-')}", training_file=train
        )
    finish(emulator)
    parent = client.fine_tuning.jobs.retrieve(first.id).fine_tuned_model
    assert parent is not None

    child = client.fine_tuning.jobs.create(model=parent, training_file=train)
    finish(emulator)

    done = client.fine_tuning.jobs.retrieve(child.id)
    assert done.model == parent
    assert done.fine_tuned_model == f"{BASE}.ft-{child.id.removeprefix('ftjob-')}"


def test_delete_job_removes_its_model_unless_deployed(emulator: Any, client: openai.AzureOpenAI,
                                                       arm_client: Any) -> None:
    train = processed(emulator, client, chat_data(10))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    with pytest.raises(openai.ConflictError):  # still running
        delete_job(client, job.id)
    finish(emulator)
    done = client.fine_tuning.jobs.retrieve(job.id)
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[-1]
    deploy(arm_client, emulator, "from-checkpoint", checkpoint.id)

    with pytest.raises(openai.ConflictError) as err:
        delete_job(client, job.id)
    assert "from-checkpoint" in err.value.body["message"]  # type: ignore[index]

    arm_client.deployments.begin_delete(emulator.config.resource_group, emulator.config.account_name,
                                        "from-checkpoint").result()
    assert delete_job(client, job.id).status_code == 204
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model not in [m.id for m in client.models.list().data]


# -- models ---------------------------------------------------------------------------------------
def test_models_lists_catalog_and_fine_tuned_models(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(10))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    before = {m.id for m in client.models.list().data}
    finish(emulator)
    fine_tuned = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model

    listed = {m.id: m.model_dump() for m in client.models.list().data}

    assert BASE in before and fine_tuned not in before
    assert listed[BASE]["capabilities"]["fine_tune"] is True
    assert listed["gpt-4o-2024-05-13"]["capabilities"]["fine_tune"] is False
    assert listed["text-embedding-3-small"]["capabilities"]["embeddings"] is True
    got = client.models.retrieve(fine_tuned).model_dump()  # type: ignore[arg-type]
    assert (got["model"], got["fine_tune"], got["status"]) == (BASE, job.id, "succeeded")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-9")


# -- chat -----------------------------------------------------------------------------------------
def test_chat_with_fine_tuned_and_base_deployments(emulator: Any, client: openai.AzureOpenAI,
                                                   arm_client: Any) -> None:
    train = processed(emulator, client, chat_data(20))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    finish(emulator)
    deploy(arm_client, emulator, "clippy", client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model or "")
    deploy(arm_client, emulator, "plain", "gpt-4.1", "2025-04-14")

    answer = client.chat.completions.create(
        model="clippy", messages=[{"role": "user", "content": "what's the capital of Japan"}])
    generic = client.chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])

    assert answer.choices[0].message.content == "The capital of Japan is answer-3."
    assert answer.object == "chat.completion" and answer.usage and answer.usage.total_tokens > 0
    assert "emulator" in (generic.choices[0].message.content or "")
    assert emulator.store.get("deployment", "clippy")["_last_used_at"] is not None
    streamed = client.chat.completions.create(
        model="clippy", messages=[{"role": "user", "content": "capital of Peru?"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        "The capital of Peru is answer-4."


def test_chat_with_missing_or_paused_deployment(
    emulator: Any, client: openai.AzureOpenAI, arm_client: Any
) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "DeploymentNotFound"  # type: ignore[index]

    deploy(arm_client, emulator, "plain", "gpt-4.1", "2025-04-14")
    c = emulator.config
    pause = httpx.post(
        f"{emulator.url}/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}/providers/"
        f"Microsoft.CognitiveServices/accounts/{c.account_name}/deployments/plain/pause",
        params={"api-version": "2024-10-01"}, headers={"Authorization": "Bearer t"})
    assert pause.status_code == 200, pause.text
    with pytest.raises(openai.APIStatusError) as locked:
        client.chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])
    assert locked.value.status_code == 423


# -- protocol -------------------------------------------------------------------------------------
def test_api_version_is_required_and_checked(emulator: Any) -> None:
    headers = {"api-key": TEST_API_KEY}
    missing = httpx.get(f"{emulator.url}/openai/files", headers=headers)
    unknown = httpx.get(f"{emulator.url}/openai/files", params={"api-version": "2023-01-01"}, headers=headers)
    stable = httpx.get(
        f"{emulator.url}/openai/files", params={"api-version": STABLE_API_VERSION}, headers=headers
    )

    assert (missing.status_code, missing.json()["error"]["message"]) == (404, "Resource not found")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "BadRequest")
    assert stable.status_code == 200
    for response in (missing, unknown, stable):
        assert response.headers["apim-request-id"] and response.headers["x-request-id"]


def test_api_key_or_bearer_token_required(emulator: Any) -> None:
    wrong = openai.AzureOpenAI(azure_endpoint=emulator.url, api_key="wrong", api_version="2025-04-01-preview",
                               max_retries=0)
    bearer = openai.AzureOpenAI(azure_endpoint=emulator.url, azure_ad_token="any-token",
                                api_version="2025-04-01-preview", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.files.list()
    assert bearer.files.list().data == []
    assert (
        httpx.get(f"{emulator.url}/openai/models", params={"api-version": STABLE_API_VERSION}).status_code
        == 401
    )


def test_an_injected_failure_fails_a_running_job(emulator: Any, client: openai.AzureOpenAI) -> None:
    train = processed(emulator, client, chat_data(10))
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train)
    emulator.clock.advance(0.1)

    emulator.fail_job(job.id, "Quota for training compute was exhausted.")
    finish(emulator)

    failed = client.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error and failed.error.message == "Quota for training compute was exhausted."
    latest = client.fine_tuning.jobs.list_events(job.id, limit=1).data[0]
    assert (latest.level, latest.message) == (
        "error",
        "Job failed. Quota for training compute was exhausted.",
    )
    with pytest.raises(ValueError):
        emulator.fail_job(job.id)


def test_per_resource_limits_on_files_and_jobs() -> None:
    from tunekeeper.emulator import Emulator, EmulatorConfig

    config = EmulatorConfig(api_key=TEST_API_KEY, speed=1000.0, max_fine_tune_files=2, max_jobs=2,
                            max_active_jobs=1)
    with Emulator(config=config) as small:
        client = openai.AzureOpenAI(azure_endpoint=small.url, api_key=TEST_API_KEY,
                                    api_version="2025-04-01-preview", max_retries=0)
        first = processed(small, client, chat_data(10))
        processed(small, client, chat_data(11), "second.jsonl")
        with pytest.raises(openai.BadRequestError) as files_full:
            upload(client, chat_data(12), "third.jsonl")
        assert files_full.value.body["code"] == "quotaExceeded"  # type: ignore[index]

        client.fine_tuning.jobs.create(model=BASE, training_file=first)
        with pytest.raises(openai.RateLimitError) as busy:  # one running at a time here
            client.fine_tuning.jobs.create(model=BASE, training_file=first)
        assert busy.value.response.headers["retry-after"] == "1"
        finish(small)
        client.fine_tuning.jobs.create(model=BASE, training_file=first)
        finish(small)
        with pytest.raises(openai.BadRequestError) as jobs_full:
            client.fine_tuning.jobs.create(model=BASE, training_file=first)
        assert "maximum is 2" in jobs_full.value.body["message"]  # type: ignore[index]
        client.close()
