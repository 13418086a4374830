"""Hostile manifest files: alias expansion bounded per file and per run; discovery reads regular files
inside the repository only, checks the size before reading, and reports every file it skips.

Each case once hung ``validate``, grew it to gigabytes, or echoed a file from outside the repository.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest
from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import ManifestError
from tunekeeper.resources import load, load_with_diagnostics
from tunekeeper.resources._yaml import MAX_FILE_BYTES, MAX_VALUES_PER_DOCUMENT

SECRET = "OUTSIDE-SECRET-5e1f"


def bomb_document(name: str) -> str:
    """One FineTuneJob document whose aliases expand to ~85,000 values: under the per-document limit."""
    a = "[" + ",".join(str(i) for i in range(30)) + "]"
    return (
        f"apiVersion: tunekeeper.io/v1alpha1\nkind: FineTuneJob\nmetadata: {{name: {name}}}\nspec:\n"
        f"  a: &a {a}\n  b: &b [{','.join(['*a'] * 30)}]\n  c: &c [{','.join(['*b'] * 30)}]\n"
        "  d: [*c, *c]\n"
    )


def diagnostics(paths: list[Path], root: Path) -> tuple[Diagnostic, ...]:
    return load_with_diagnostics(paths, root=root)[1]


def rendered(found: tuple[Diagnostic, ...]) -> str:
    return "\n".join(d.render() for d in found)


def test_one_bomb_document_stays_under_the_document_limit(repo: Path) -> None:
    path = repo / "one.yaml"
    path.write_text(bomb_document("x"))
    assert "expands to more than" not in rendered(diagnostics([path], repo))
    assert 80_000 < MAX_VALUES_PER_DOCUMENT


def test_many_bomb_documents_in_one_file_stop_at_the_file_limit(repo: Path) -> None:
    path = repo / "bombs.yaml"
    path.write_text("---\n".join(bomb_document(f"x{i}") for i in range(200)))
    started = time.perf_counter()
    found = diagnostics([path], repo)
    assert time.perf_counter() - started < 10
    limit = [d for d in found if "this file expands to more than" in d.message]
    assert len(limit) == 1 and limit[0].path.endswith("bombs.yaml") and limit[0].line > 1


@pytest.mark.slow  # 30 files of 85,000 values each: seconds
def test_many_bomb_files_stop_at_the_run_limit(repo: Path) -> None:
    folder = repo / "m"
    folder.mkdir()
    for i in range(30):
        (folder / f"b{i:02}.yaml").write_text(bomb_document(f"x{i}"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = diagnostics([folder], repo)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    stopped = [d for d in found if "manifests of this run expand to more than" in d.message]
    assert stopped and all(d.severity == "error" for d in stopped)
    assert grown_mb < 1024


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_folder_is_skipped_with_a_warning_not_read(repo: Path) -> None:
    os.mkfifo(repo / "pipe.yaml")
    found = diagnostics([repo], repo)
    skipped = [d for d in found if d.path.endswith("/pipe.yaml")]
    assert [d.severity for d in skipped] == ["warning"]
    assert "not a regular file (it is a FIFO)" in skipped[0].message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_explicitly_is_an_error(repo: Path) -> None:
    os.mkfifo(repo / "pipe.yaml")
    with pytest.raises(ManifestError) as caught:
        load([repo / "pipe.yaml"], root=repo)
    assert "skipped: is not a regular file (it is a FIFO)" in caught.value.diagnostics[0].message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_symlink_to_a_device_is_refused_without_reading(repo: Path) -> None:
    (repo / "zero.yaml").symlink_to("/dev/zero")
    started = time.perf_counter()
    found = diagnostics([repo / "zero.yaml"], repo)
    assert time.perf_counter() - started < 2
    assert [d.severity for d in found] == ["error"]
    assert "outside the repository root" in found[0].message


def test_a_symlink_out_of_the_repository_is_not_followed_and_never_echoed(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.yaml"
    outside.write_text(
        f"apiVersion: tunekeeper.io/v1alpha1\nkind: FineTuneJob\nmetadata: {{name: {SECRET}}}\n"
        f"spec: {{baseModel: {SECRET}}}\n"
    )
    (repo / "link.yaml").symlink_to(outside)
    for paths in ([repo], [repo / "link.yaml"]):
        found = diagnostics(paths, repo)
        assert SECRET not in rendered(found)
        assert any(
            d.path.endswith("/link.yaml") and "outside the repository root" in d.message for d in found
        )


def test_a_symlink_inside_the_repository_is_read(repo: Path) -> None:
    (repo / "real").mkdir()
    (repo / "real" / "job.yaml").write_text(
        "apiVersion: tunekeeper.io/v1alpha1\nkind: FineTuneJob\nmetadata: {name: linked}\n"
        "spec: {baseModel: gpt-4.1-2025-04-14, trainingFile: data/train.jsonl}\n"
    )
    (repo / "job.yaml").symlink_to(repo / "real" / "job.yaml")
    desired, _ = load([repo / "job.yaml"], root=repo)
    assert [j.name for j in desired.jobs] == ["linked"]


def test_a_symlinked_folder_is_reported_not_followed(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "x.yaml").write_text(f"kind: FineTuneJob\nmetadata: {{name: {SECRET}}}\n")
    (repo / "linked").symlink_to(outside)
    found = diagnostics([repo], repo)
    assert SECRET not in rendered(found)
    assert any(
        d.path.endswith("/linked") and d.severity == "warning" and "not followed" in d.message for d in found
    )


def test_an_oversized_file_is_refused_by_its_size_before_reading(repo: Path) -> None:
    big = repo / "big.yaml"
    with big.open("wb") as f:  # sparse: the size is there, the bytes are not (reading it would cost 6 MB)
        f.truncate(MAX_FILE_BYTES + 1024 * 1024)
    in_folder = [d for d in diagnostics([repo], repo) if d.path.endswith("/big.yaml")]
    assert [d.severity for d in in_folder] == ["warning"]
    assert f"is {MAX_FILE_BYTES + 1024 * 1024} bytes; a manifest must be under 5 MB" in in_folder[0].message
    named = diagnostics([big], repo)
    assert [d.severity for d in named] == ["error"]
