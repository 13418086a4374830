"""Stop the emulator in the middle of a training run and start a new one on the same data dir:
the job carries on to success and every file and checkpoint is still there."""

from __future__ import annotations

import json
from pathlib import Path

import openai
from tunekeeper.emulator import Emulator

KEY = "restart-key"
BASE = "gpt-4.1-mini-2025-04-14"


def _data(n: int) -> bytes:
    return "".join(json.dumps({"messages": [
        {"role": "user", "content": f"Question {i}?"},
        {"role": "assistant", "content": f"Answer {i}."},
    ]}) + "\n" for i in range(n)).encode()


def _client(emu: Emulator) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=emu.url, api_key=KEY, api_version="2025-04-01-preview", max_retries=0
    )


def test_job_survives_a_restart(tmp_path: Path) -> None:
    # given a job one epoch into training
    # Real time passes while the emulator restarts; speed 10 keeps that well inside one epoch.
    first = Emulator(data_dir=tmp_path, api_key=KEY, speed=10.0).start()
    client = _client(first)
    train = client.files.create(file=("train.jsonl", _data(20)), purpose="fine-tune")
    valid = client.files.create(file=("valid.jsonl", _data(10)), purpose="fine-tune")
    first.clock.advance(1)
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, validation_file=valid.id,
                                         seed=11, hyperparameters={"n_epochs": 4, "batch_size": 2})
    first.clock.advance((60 + 30 + 60 * 1.4) / 10)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    early = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(early) == 1
    client.close()
    first.stop()

    # when a new emulator starts on the same data dir
    with Emulator(data_dir=tmp_path, api_key=KEY, speed=10.0) as second:
        client = _client(second)
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
        assert [c.id for c in client.fine_tuning.jobs.checkpoints.list(job.id).data] == [early[0].id]
        second.clock.advance(3600)

        # then the job finishes, and files and checkpoints are all there
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded"
        assert client.files.content(train.id).content == _data(20)
        assert client.files.retrieve(valid.id).status == "processed"
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert [c.step_number for c in checkpoints] == [40, 30, 20]
        assert client.files.content(done.result_files[0]).text.startswith("step,train_loss,")
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
        assert events[0] == "Job succeeded." and events[-1].startswith("Job enqueued.")
        client.close()


def test_clock_does_not_go_back_after_a_restart(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path, speed=1000.0) as emu:
        emu.clock.advance(10_000)
        ahead = emu.clock.now()
    with Emulator(data_dir=tmp_path, speed=1000.0) as emu:
        assert emu.clock.now() >= ahead
