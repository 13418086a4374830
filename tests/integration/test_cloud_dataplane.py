"""AzureCloud's data plane against the real emulator over HTTP: files, jobs, events, checkpoints,
models, chat, error translation, and the openai SDK's retries under injected faults.

Each test connects as a user would (``connect`` with an api-key Account on the emulator's
loopback URL) and asserts on what the emulator then holds. Time moves with
``emulator.clock.advance``; the only real waits are the short Retry-After values injected below.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tunekeeper.cloud import AzureCloud, CloudSettings, DeploymentRequest, JobRequest, connect
from tunekeeper.errors import NotFound, PermanentCloudError, TransientCloudError
from tunekeeper.resources.specs import AccountSpec, AuthSpec, Hyperparameters, Method, Sku, TrainingType

from .cloud_helpers import TEST_API_KEY, account_for

BASE_MODEL = "gpt-4.1-mini-2025-04-14"
BOM = b"\xef\xbb\xbf"
FAST = CloudSettings(polling_interval=0.05, arm_retry_backoff_factor=0.05, conflict_initial_delay=0.05)


def write_training_file(path: Path, *, examples: int = 12, tag: str = "x") -> Path:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are Clippy."},
                    {"role": "user", "content": f"What is the answer to question {tag} {i}?"},
                    {"role": "assistant", "content": f"It looks like you are asking about {tag} {i}."},
                ]
            }
        )
        for i in range(examples)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_dpo_file(path: Path, *, examples: int = 12) -> Path:
    lines = [
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": f"Greet person {i}"}]},
                "preferred_output": [{"role": "assistant", "content": f"Hello, person {i}!"}],
                "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
            }
        )
        for i in range(examples)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cloud_settings() -> CloudSettings:
    return FAST


async def processed_file(cloud: AzureCloud, emulator: Any, path: Path) -> str:
    uploaded = await cloud.upload_file(path, filename=path.name)
    emulator.clock.advance(60)
    assert (await cloud.get_file(uploaded.id)).status == "processed"
    return uploaded.id


# -- files ---------------------------------------------------------------------------------
async def test_upload_adds_the_bom_reports_progress_and_download_returns_it(
    cloud: AzureCloud,
    emulator: Any,
    tmp_path: Path,
) -> None:
    path = write_training_file(tmp_path / "train.jsonl")
    progress: list[tuple[int, int]] = []

    uploaded = await cloud.upload_file(
        path,
        filename="train.jsonl",
        add_bom=True,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    expected = BOM + path.read_bytes()
    assert uploaded.filename == "train.jsonl" and uploaded.purpose == "fine-tune"
    assert uploaded.bytes == len(expected)
    assert progress[-1] == (len(expected), len(expected))
    assert await cloud.download_file(uploaded.id) == expected
    emulator.clock.advance(60)
    assert (await cloud.get_file(uploaded.id)).status == "processed"


async def test_upload_keeps_an_existing_bom_and_adds_none_unasked(cloud: AzureCloud, tmp_path: Path) -> None:
    with_bom = tmp_path / "with_bom.jsonl"
    with_bom.write_bytes(BOM + write_training_file(tmp_path / "plain.jsonl").read_bytes())
    kept = await cloud.upload_file(with_bom, filename="with_bom.jsonl", add_bom=True)
    plain = await cloud.upload_file(tmp_path / "plain.jsonl", filename="plain.jsonl")
    assert await cloud.download_file(kept.id) == with_bom.read_bytes()
    assert await cloud.download_file(plain.id) == (tmp_path / "plain.jsonl").read_bytes()


async def test_list_files_follows_every_page(emulator: Any, tmp_path: Path) -> None:
    settings = CloudSettings(files_page_size=2)
    async with await connect(account_for(emulator), api_key=TEST_API_KEY, settings=settings) as small_pages:
        path = write_training_file(tmp_path / "t.jsonl")
        ids = {(await small_pages.upload_file(path, filename=f"t{i}.jsonl")).id for i in range(5)}
        before = small_pages.request_count

        listed = await small_pages.list_files()

        assert {f.id for f in listed} == ids
        assert small_pages.request_count - before == 3  # pages of 2, 2 and 1


async def test_import_fetches_from_a_url_and_the_file_is_listed(
    cloud: AzureCloud,
    emulator: Any,
    tmp_path: Path,
) -> None:
    data = write_training_file(tmp_path / "remote.jsonl").read_bytes()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/data/remote.jsonl", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        imported = await cloud.import_file(
            f"http://127.0.0.1:{port}/data/remote.jsonl", filename="remote.jsonl"
        )
    finally:
        await runner.cleanup()

    assert imported.filename == "remote.jsonl"
    assert imported.id in {f.id for f in await cloud.list_files()}
    assert await cloud.download_file(imported.id) == data


async def test_import_refused_by_the_service_is_a_permanent_error(cloud: AzureCloud) -> None:
    with pytest.raises(PermanentCloudError) as caught:
        await cloud.import_file("https://example.com/data.jsonl", filename="data.jsonl")
    assert caught.value.status_code == 400
    assert caught.value.code == "fileImportFailed"


async def test_get_raises_not_found_and_delete_succeeds_when_already_gone(
    cloud: AzureCloud,
    tmp_path: Path,
) -> None:
    uploaded = await cloud.upload_file(write_training_file(tmp_path / "t.jsonl"), filename="t.jsonl")
    await cloud.delete_file(uploaded.id)
    await cloud.delete_file(uploaded.id)  # already gone: still fine
    with pytest.raises(NotFound) as caught:
        await cloud.get_file(uploaded.id)
    assert caught.value.status_code == 404 and caught.value.request_id
    assert await cloud.list_files() == []
    with pytest.raises(NotFound):
        await cloud.get_job("ftjob-0123456789abcdef0123456789abcdef")
    await cloud.delete_job("ftjob-0123456789abcdef0123456789abcdef")


# -- fine-tuning jobs ------------------------------------------------------------------------
async def test_job_lifecycle_create_get_list_events_checkpoints_models(
    cloud: AzureCloud,
    emulator: Any,
    tmp_path: Path,
) -> None:
    training = await processed_file(cloud, emulator, write_training_file(tmp_path / "train.jsonl"))
    validation = await processed_file(cloud, emulator, write_training_file(tmp_path / "valid.jsonl", tag="v"))

    created = await cloud.create_job(
        JobRequest(
            model=BASE_MODEL,
            training_file=training,
            validation_file=validation,
            seed=42,
            suffix="clippy",
            hyperparameters=Hyperparameters(n_epochs=2, batch_size=1, learning_rate_multiplier=0.1),
            training_type=TrainingType.GLOBAL,
        )
    )

    assert created.status in ("pending", "running")
    assert (created.model, created.training_file, created.validation_file) == (
        BASE_MODEL,
        training,
        validation,
    )
    assert (created.seed, created.suffix, created.method) == (42, "clippy", "supervised")
    assert (
        created.hyperparameters["n_epochs"] == 2
        and created.hyperparameters["learning_rate_multiplier"] == 0.1
    )
    assert created.training_type == "GlobalStandard"
    assert [j.id for j in await cloud.list_jobs()] == [created.id]

    emulator.clock.advance(24 * 3600)
    done = await cloud.get_job(created.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model and done.result_files and done.finished_at

    events = await cloud.list_job_events(created.id)
    assert events and all(e.id and e.message and e.level in ("info", "warning", "error") for e in events)
    assert any("succeeded" in e.message.lower() for e in events)
    newest_first = await cloud.list_job_events(created.id, after=events[0].id)
    assert [e.id for e in newest_first] == [e.id for e in events[1:]]

    checkpoints = await cloud.list_checkpoints(created.id)
    assert len(checkpoints) == 2  # one per epoch
    assert all(c.job_id == created.id and c.fine_tuned_model_checkpoint and c.metrics for c in checkpoints)

    models = {m.id: m for m in await cloud.list_models()}
    assert models[BASE_MODEL].can_fine_tune
    tuned = models[done.fine_tuned_model]
    assert tuned.fine_tune == created.id

    results = await cloud.download_file(done.result_files[0])
    assert results.splitlines()[0].startswith(b"step,")


async def test_list_jobs_events_and_checkpoints_follow_every_page(emulator: Any, tmp_path: Path) -> None:
    async with await connect(
        account_for(emulator), api_key=TEST_API_KEY, settings=CloudSettings(page_size=2)
    ) as small_pages:
        training = await processed_file(small_pages, emulator, write_training_file(tmp_path / "t.jsonl"))
        jobs = [
            await small_pages.create_job(
                JobRequest(
                    model=BASE_MODEL,
                    training_file=training,
                    seed=i,
                    hyperparameters=Hyperparameters(n_epochs=3),
                )
            )
            for i in range(5)
        ]
        before = small_pages.request_count
        listed = await small_pages.list_jobs()
        assert {j.id for j in listed} == {j.id for j in jobs}
        assert small_pages.request_count - before == 3

        emulator.clock.advance(24 * 3600)
        assert len(await small_pages.list_checkpoints(jobs[0].id)) == 3
        events = await small_pages.list_job_events(jobs[0].id)
        assert len(events) > 2 and len({e.id for e in events}) == len(events)


async def test_dpo_job_sends_beta_under_the_method(cloud: AzureCloud, emulator: Any, tmp_path: Path) -> None:
    training = await processed_file(cloud, emulator, write_dpo_file(tmp_path / "prefs.jsonl"))
    created = await cloud.create_job(
        JobRequest(
            model=BASE_MODEL,
            training_file=training,
            method=Method.DPO,
            hyperparameters=Hyperparameters(n_epochs=1, beta=0.25),
        )
    )
    assert created.method == "dpo"
    assert created.hyperparameters["beta"] == 0.25
    assert (await cloud.get_job(created.id)).method == "dpo"


async def test_cancel_and_delete_job(cloud: AzureCloud, emulator: Any, tmp_path: Path) -> None:
    training = await processed_file(cloud, emulator, write_training_file(tmp_path / "t.jsonl"))
    job = await cloud.create_job(JobRequest(model=BASE_MODEL, training_file=training))

    cancelled = await cloud.cancel_job(job.id)
    assert cancelled.status == "cancelled"
    emulator.clock.advance(60)
    assert (await cloud.get_job(job.id)).status == "cancelled"

    await cloud.delete_job(job.id)
    with pytest.raises(NotFound):
        await cloud.get_job(job.id)
    assert await cloud.list_jobs() == []
    await cloud.delete_job(job.id)  # already gone: still fine


async def test_rejected_job_is_a_permanent_error_with_code_request_id_and_hint(
    cloud: AzureCloud,
    emulator: Any,
    tmp_path: Path,
) -> None:
    training = await processed_file(cloud, emulator, write_training_file(tmp_path / "t.jsonl"))
    with pytest.raises(PermanentCloudError) as caught:
        # not fine-tunable
        await cloud.create_job(JobRequest(model="gpt-4o-2024-05-13", training_file=training))
    error = caught.value
    assert error.status_code == 400 and error.code and error.request_id
    assert error.hint
    assert f"HTTP 400 {error.code}" in error.message
    assert (await cloud.list_jobs()) == []


# -- chat ----------------------------------------------------------------------------------
async def test_chat_answers_through_a_deployment(cloud: AzureCloud) -> None:
    operation = await cloud.begin_create_deployment(
        DeploymentRequest(
            name="chat-bot",
            model_name="gpt-4.1-mini",
            model_version="2025-04-14",
            sku=Sku.GLOBAL_STANDARD,
        )
    )
    await operation.result()
    answer = await cloud.chat("chat-bot", [{"role": "user", "content": "Hello?"}])
    assert isinstance(answer, str) and answer
    with pytest.raises(NotFound):
        await cloud.chat("no-such-deployment", [{"role": "user", "content": "Hello?"}])


# -- credentials ---------------------------------------------------------------------------
async def test_key_from_the_environment_works_and_a_wrong_key_is_never_shown(
    emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEKEEPER_TEST_KEY", TEST_API_KEY)
    async with await connect(account_for(emulator)) as from_env:
        assert await from_env.list_files() == []

    wrong = "wrong-key-4f9a1c"
    monkeypatch.setenv("TUNEKEEPER_TEST_KEY", wrong)
    async with await connect(account_for(emulator)) as bad:
        with pytest.raises(PermanentCloudError) as caught:
            await bad.list_files()
    error = caught.value
    assert error.status_code == 401 and error.hint and "key" in error.hint
    assert wrong not in f"{error.message} {error.hint} {error!r}"


async def test_entra_auth_on_loopback_uses_the_development_token(emulator: Any, tmp_path: Path) -> None:
    account = AccountSpec(
        name="emulator",
        endpoint=emulator.url,
        management_endpoint=emulator.url,
        subscription_id=emulator.config.subscription_id,
        resource_group=emulator.config.resource_group,
        account_name=emulator.config.account_name,
        auth=AuthSpec(kind="entra"),
    )
    async with await connect(account, settings=FAST) as entra:
        uploaded = await entra.upload_file(write_training_file(tmp_path / "t.jsonl"), filename="t.jsonl")
        assert [f.id for f in await entra.list_files()] == [uploaded.id]
        assert await entra.list_deployments() == []


# -- retries (the openai SDK's policy) -----------------------------------------------------
async def test_throttling_is_retried_after_retry_after_and_counted(cloud: AzureCloud, emulator: Any) -> None:
    emulator.faults.add("GET /openai/files", status=429, retry_after=0.6, times=2)
    before = cloud.request_count
    started = time.monotonic()

    assert await cloud.list_files() == []

    assert time.monotonic() - started >= 1.2  # two waits of the advertised 0.6 s
    assert cloud.request_count - before == 3


async def test_server_errors_and_dropped_connections_are_retried_without_duplicates(
    cloud: AzureCloud,
    emulator: Any,
    tmp_path: Path,
) -> None:
    training = await processed_file(cloud, emulator, write_training_file(tmp_path / "t.jsonl"))
    emulator.faults.add("POST /openai/fine_tuning/jobs", status=503, retry_after=0.05, times=1)
    emulator.faults.add("POST /openai/fine_tuning/jobs", status=500, times=1)
    emulator.faults.add("GET /openai/fine_tuning/jobs", drop=True, times=1)
    before = cloud.request_count

    job = await cloud.create_job(JobRequest(model=BASE_MODEL, training_file=training))
    listed = await cloud.list_jobs()

    assert [j.id for j in listed] == [job.id]  # the failed attempts created nothing
    assert cloud.request_count - before == 3 + 2


async def test_persistent_throttling_surfaces_as_transient_with_retry_after(emulator: Any) -> None:
    emulator.faults.add("GET /openai/models", status=429, retry_after=0.05)
    async with await connect(
        account_for(emulator), api_key=TEST_API_KEY, settings=CloudSettings(max_retries=1)
    ) as impatient:
        with pytest.raises(TransientCloudError) as caught:
            await impatient.list_models()
        assert impatient.request_count == 2
    assert caught.value.status_code == 429
    assert caught.value.retry_after == pytest.approx(0.05)


async def test_a_refused_connection_fails_fast_and_names_the_host(emulator: Any) -> None:
    account = AccountSpec(
        name="gone",
        endpoint="http://127.0.0.1:9",
        management_endpoint="http://127.0.0.1:9",
        subscription_id="s",
        resource_group="g",
        account_name="a",
        auth=AuthSpec(kind="apiKey", api_key_env="UNUSED"),
    )
    started = time.monotonic()
    async with await connect(account, api_key="k") as unreachable:  # default settings: six retries for 429s
        with pytest.raises(PermanentCloudError) as data_plane:
            await unreachable.list_files()
        with pytest.raises(PermanentCloudError) as arm:
            await unreachable.list_deployments()
    assert time.monotonic() - started < 15
    for caught in (data_plane, arm):
        assert "127.0.0.1:9 refused the connection" in caught.value.message
        assert caught.value.hint is not None and "is the port right" in caught.value.hint


async def test_a_host_that_does_not_resolve_is_named_with_a_dns_hint(emulator: Any) -> None:
    account = AccountSpec(
        name="typo",
        endpoint="https://contoso-typo.invalid",
        management_endpoint="https://contoso-typo.invalid",
        subscription_id="s",
        resource_group="g",
        account_name="a",
        auth=AuthSpec(kind="apiKey", api_key_env="UNUSED"),
    )
    async with await connect(account, api_key="k") as unreachable:  # ARM would ask Entra ID first: data plane
        with pytest.raises(PermanentCloudError) as caught:
            await unreachable.list_files()
    assert "cannot resolve the host name contoso-typo.invalid" in caught.value.message
    assert caught.value.hint is not None and "typo" in caught.value.hint


async def test_concurrent_calls_share_one_client(cloud: AzureCloud, tmp_path: Path) -> None:
    path = write_training_file(tmp_path / "t.jsonl")
    uploaded = await asyncio.gather(*(cloud.upload_file(path, filename=f"c{i}.jsonl") for i in range(4)))
    assert len({f.id for f in uploaded}) == 4
    assert len(await cloud.list_files()) == 4
