"""The local state file: a cache, written atomically, that survives corruption."""

from __future__ import annotations

from pathlib import Path

from tunekeeper.cloud.base import ObservedCheckpoint
from tunekeeper.reconcile import MetricsSummary, StateFile


def test_round_trip_and_known(tmp_path: Path) -> None:
    state = StateFile.for_root(tmp_path)
    state.record("FineTuneJob/bot", {"job_id": "ftjob-1", "conditions": []})
    state.record("Deployment/bot", {"provisioned": True})
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
    state.record("FineTuneJob/bot", {"job_id": "ftjob-1"})
    state.record("FineTuneJob/bot", {"job_id": None, "job_status": None})
    state.record("Deployment/bot", {"provisioned": True})
    state.record("Deployment/bot", {"model": "m"})
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
        state.record("FineTuneJob/bot", {"job_id": f"ftjob-{i}"})
        state.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert StateFile(tmp_path / "state.json").known().jobs == {"bot": "ftjob-2"}


def test_in_memory_state_never_writes(tmp_path: Path) -> None:
    state = StateFile(None)
    state.record("FineTuneJob/bot", {"job_id": "ftjob-1"})
    state.save()
    assert state.known().jobs == {"bot": "ftjob-1"}
