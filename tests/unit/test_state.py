"""The local state file: a cache, written atomically, that survives corruption."""

from __future__ import annotations

from pathlib import Path

from tunekeeper.cloud.base import ObservedCheckpoint
from tunekeeper.reconcile import MetricsSummary, StateEntry, StateFile


def test_round_trip_and_known(tmp_path: Path) -> None:
    state = StateFile.for_root(tmp_path)
    state.record("FineTuneJob/bot", StateEntry(job_id="ftjob-1"))
    state.record("Deployment/bot", StateEntry(provisioned=True))
    state.record_job_details("ftjob-1", [ObservedCheckpoint("ftchkpt-2", "ftjob-1", "m:ckpt-step-2", 2,
                                                            {"valid_loss": 0.5}, 5)],
                             MetricsSummary({"train_loss": 0.1}, steps=2, last_step=2))
    state.save()
    assert (tmp_path / ".tunekeeper" / "state.json").is_file()
    again = StateFile.for_root(tmp_path)
    known = again.known()
    assert known.jobs == {"bot": "ftjob-1"} and known.deployments == frozenset({"bot"})
    details = again.job_details("ftjob-1")
    assert details is not None
    checkpoints, summary = details
    assert checkpoints[0].id == "ftchkpt-2" and checkpoints[0].metrics == {"valid_loss": 0.5}
    assert summary == MetricsSummary({"train_loss": 0.1}, steps=2, last_step=2)
    assert again.job_details("ftjob-9") is None


def test_previous_job_and_provisioned_flag_are_kept(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "s.json")
    state.record("FineTuneJob/bot", StateEntry(job_id="ftjob-1"))
    state.record("FineTuneJob/bot", StateEntry(job_id=None))
    state.record("Deployment/bot", StateEntry(provisioned=True))
    state.record("Deployment/bot", StateEntry())
    assert state.known().jobs == {"bot": "ftjob-1"} and "bot" in state.known().deployments


def test_corrupt_or_foreign_file_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert StateFile(path).resources() == {}
    path.write_text('{"format": 99, "resources": {"FineTuneJob/x": {"job_id": "j"}}}')
    assert StateFile(path).known().jobs == {}


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    for i in range(3):
        state.record("FineTuneJob/bot", StateEntry(job_id=f"ftjob-{i}"))
        state.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert StateFile(tmp_path / "state.json").known().jobs == {"bot": "ftjob-2"}


def test_in_memory_state_never_writes(tmp_path: Path) -> None:
    state = StateFile(None)
    state.record("FineTuneJob/bot", StateEntry(job_id="ftjob-1"))
    state.save()
    assert state.known().jobs == {"bot": "ftjob-1"}


def test_a_format_1_file_keeps_what_later_runs_read(tmp_path: Path) -> None:
    """Version 0.1 stored the status display per resource; its job id, provisioned flag and
    conditions are still read, and the next save writes typed entries only."""
    path = tmp_path / "state.json"
    path.write_text(
        '{"format": 1, "resources": {"FineTuneJob/bot": {"job_id": "ftjob-1", "job_status": "running",'
        ' "phase": "TrainingRunning", "conditions": [{"type": "Ready", "status": "False",'
        ' "reason": "TrainingRunning", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00+00:00"}]},'
        ' "Deployment/bot": {"provisioned": true, "model": "m"}}}'
    )
    state = StateFile(path)
    assert state.known().jobs == {"bot": "ftjob-1"} and state.known().deployments == frozenset({"bot"})
    assert [c.reason for c in state.conditions("FineTuneJob/bot")] == ["TrainingRunning"]
    state.save()
    import json

    saved = json.loads(path.read_text())
    assert saved["format"] == 2
    assert set(saved["resources"]["FineTuneJob/bot"]) == {"job_id", "conditions"}
    assert saved["resources"]["Deployment/bot"] == {"provisioned": True, "conditions": []}
