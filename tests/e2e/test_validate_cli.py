"""``tunekeeper validate`` as users run it: the installed console script in a subprocess.

Exit codes 0 (valid, warnings allowed), 1 (invalid), 2 (bad usage); ``-o json`` is one JSON
document on stdout; every example folder validates clean; every file of the malformed-manifest
corpus gives diagnostics, exit 1 and never a traceback (that one in-process, for speed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
MALFORMED = REPO / "tests" / "data" / "manifests" / "malformed"
GOOD_LINE = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n'
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def console_script() -> str:
    found = Path(sys.executable).with_name("tunekeeper")
    if found.exists():
        return str(found)
    which = shutil.which("tunekeeper")
    assert which, "the tunekeeper console script is not installed"
    return which


def tunekeeper(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=120, check=False
    )


def project(tmp_path: Path, manifest: str, lines: list[str] | None = None) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(lines if lines is not None else [GOOD_LINE] * 12))
    (tmp_path / "job.yaml").write_text(manifest)
    return tmp_path


JOB = """apiVersion: tunekeeper.io/v1alpha1
kind: FineTuneJob
metadata:
  name: bot
spec:
  baseModel: gpt-4.1-2025-04-14
  method:
    hyperparameters:
      n_epochs: {epochs}
  trainingFile: data/train.jsonl
"""


def test_valid_project_exits_0_with_a_dataset_table(tmp_path: Path) -> None:
    root = project(tmp_path, JOB.format(epochs=3))
    result = tunekeeper("validate", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "data/train.jsonl" in result.stdout and "supervised" in result.stdout
    assert "12" in result.stdout  # examples
    assert "Valid: 1 resource(s), 1 dataset(s)" in result.stderr


def test_invalid_manifest_exits_1_with_file_line_column(tmp_path: Path) -> None:
    root = project(tmp_path, JOB.format(epochs=0))
    result = tunekeeper("validate", str(root / "job.yaml"), cwd=root)
    assert result.returncode == 1
    assert (
        'job.yaml:9:17: error: spec.method.hyperparameters.n_epochs must be an integer from 1 to 50 '
        'or "auto", got 0'
    ) in result.stderr
    assert "  hint: " in result.stderr


def test_invalid_dataset_referenced_by_a_manifest_exits_1(tmp_path: Path) -> None:
    root = project(tmp_path, JOB.format(epochs=2), [GOOD_LINE] * 11 + ["{not json\n"])
    result = tunekeeper("validate", "-o", "json", cwd=root)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    (dataset,) = document["datasets"]
    assert dataset["path"] == "data/train.jsonl" and dataset["ok"] is False
    assert dataset["used_by"] == ["FineTuneJob/bot trainingFile"]
    assert any(d["path"] == "data/train.jsonl" and d["line"] == 12 and d["severity"] == "error"
               for d in document["diagnostics"])


def test_manifest_and_dataset_problems_are_reported_together(tmp_path: Path) -> None:
    root = project(tmp_path, JOB.format(epochs=2), [GOOD_LINE] * 11 + ["{not json\n"])
    (root / "other.yaml").write_text(JOB.format(epochs=99).replace("name: bot", "name: other"))
    result = tunekeeper("validate", cwd=root)
    assert result.returncode == 1
    assert "other.yaml:9:17: error: spec.method.hyperparameters.n_epochs" in result.stderr
    assert "data/train.jsonl:12" in result.stderr


def test_json_output_for_machines(tmp_path: Path) -> None:
    root = project(tmp_path, JOB.format(epochs=2))
    result = tunekeeper("validate", ".", "-o", "json", "--workers", "2", cwd=root)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["errors"] == 0
    (resource,) = document["resources"]
    assert (resource["kind"], resource["name"]) == ("FineTuneJob", "bot")
    assert resource["spec"]["hyperparameters"]["n_epochs"] == 2
    (dataset,) = document["datasets"]
    assert dataset["stats"]["examples"] == 12
    assert dataset["stats"]["epochs"] == 2
    assert dataset["stats"]["billed_tokens"] == dataset["stats"]["tokens"] * 2


def test_dataset_named_directly(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD_LINE * 12)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(GOOD_LINE * 12 + '{"messages": []}\n')
    assert tunekeeper("validate", str(good), cwd=tmp_path).returncode == 0
    result = tunekeeper("validate", "bad.jsonl", "--exact-tokens", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.jsonl:13" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = tunekeeper("validate", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert tunekeeper("validate", "--output", "yaml", cwd=tmp_path).returncode == 2
    assert tunekeeper("validate", "--workers", "0", cwd=tmp_path).returncode == 2
    assert tunekeeper("validate", "--no-such-flag", cwd=tmp_path).returncode == 2


def test_folder_without_manifests_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "ci.yaml").write_text("on: push\n")
    result = tunekeeper("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert "no tunekeeper manifests found" in result.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_example_validates_clean(name: str) -> None:
    result = tunekeeper("validate", str(EXAMPLES / name), "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == 0
    assert document["resources"] and document["datasets"]
    assert all(d["stats"]["examples"] >= 12 for d in document["datasets"])
    assert (EXAMPLES / name / "README.md").is_file()


def test_all_examples_together() -> None:
    # every example that runs on the embedded emulator at once (an example that declares Accounts
    # makes spec.account required in the others, so it is a stack of its own)
    alone = [p.relative_to(REPO) for p in sorted(EXAMPLES.iterdir())
             if p.is_dir() and not any("kind: Account" in f.read_text() for f in p.glob("*.yaml"))]
    result = tunekeeper("validate", *map(str, alone))
    assert result.returncode == 0, result.stderr
    assert "Valid:" in result.stderr


MALFORMED_FILES = sorted(p.name for p in MALFORMED.iterdir())


def test_malformed_corpus_gives_diagnostics_never_tracebacks() -> None:
    """In-process through click's runner (42 interpreter starts would cost most of a minute); the
    command's own guard against tracebacks is what runs, and an escaping exception fails here."""
    from click.testing import CliRunner
    from tunekeeper.cli import main

    assert len(MALFORMED_FILES) >= 30
    runner = CliRunner()
    for name in MALFORMED_FILES:
        result = runner.invoke(
            main,
            ["validate", str(MALFORMED / name)],
            env={"NO_COLOR": "1", "COLUMNS": "200"},
            catch_exceptions=False,
        )
        output = result.stdout + result.stderr
        assert "Traceback" not in output, f"{name}:\n{output}"
        assert "this is a bug in tunekeeper" not in output, f"{name}:\n{output}"
        assert result.exit_code == 1, f"{name}: exit {result.exit_code}\n{output}"
        assert f"{name}:" in result.stderr and ": error: " in result.stderr, f"{name}:\n{output}"
        errors = [line for line in result.stderr.splitlines() if ": error: " in line]
        assert result.stderr.count("\n  hint: ") >= len(errors), (
            f"{name}: a diagnostic without a hint\n{output}"
        )


EVAL_DEPLOYMENT = """---
apiVersion: tunekeeper.io/v1alpha1
kind: Deployment
metadata:
  name: bot
spec:
  model: {fromJob: bot}
  gates: {evalFile: data/eval.jsonl}
"""


def test_validate_checks_the_eval_file_against_the_training_system_message(tmp_path: Path) -> None:
    system = '{"role": "system", "content": "You are terse."}, '
    trained = GOOD_LINE.replace('[{"role": "user"', "[" + system + '{"role": "user"')
    root = project(tmp_path, JOB.format(epochs=2) + EVAL_DEPLOYMENT, [trained] * 12)
    (root / "data" / "eval.jsonl").write_text(
        trained + GOOD_LINE + GOOD_LINE.replace('"Hello!"}', '"Hello!"}, {"role": "user", "content": "?"}'))

    run = tunekeeper("validate", ".", cwd=root)
    as_json = json.loads(tunekeeper("validate", ".", "-o", "json", cwd=root).stdout)

    assert run.returncode == 1, run.stderr
    assert (
        "data/eval.jsonl:2: error: example has no system message, but FineTuneJob/bot was trained with one "
        '(data/train.jsonl:1: "You are terse.")' in run.stderr
    )
    assert "data/eval.jsonl:3: error: messages[2] must be the expected answer" in run.stderr
    assert [(e["used_by"], e["examples"], e["trained_with"]) for e in as_json["eval_files"]] == [
        ("Deployment/bot gates.evalFile", 3, "data/train.jsonl")]

    (root / "data" / "eval.jsonl").write_text(trained)
    assert tunekeeper("validate", ".", cwd=root).returncode == 0


def test_workers_print_what_one_process_prints(tmp_path: Path) -> None:
    """A file of some MB with mistakes spread through it: the default (workers share out pieces of
    the file while the report's renderer loads) prints exactly what one process prints."""
    rows = []
    for index in range(12_000):
        content = f"Order {index}: où est ma commande? 東京 🙂 " + "x" * (index % 300)
        rows.append(json.dumps({"messages": [{"role": "user", "content": content},
                                             {"role": "assistant", "content": f"Shipped {index}."}]}))
    rows[7_000] = '{"messages": [{"role": "robot", "content": "x"}]}'
    rows[11_000] = rows[10]  # a duplicate across pieces
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert path.stat().st_size > 2 << 20
    one = tunekeeper("validate", str(path), "--workers", "1", cwd=tmp_path)
    many = tunekeeper("validate", str(path), "--workers", "2", cwd=tmp_path)
    default = tunekeeper("validate", str(path), cwd=tmp_path)
    assert one.returncode == 1
    assert "big.jsonl:7001" in one.stderr and "big.jsonl:11001" in one.stderr
    assert "12,000" in one.stdout
    assert (many.returncode, many.stdout, many.stderr) == (one.returncode, one.stdout, one.stderr)
    assert (default.returncode, default.stdout, default.stderr) == (one.returncode, one.stdout, one.stderr)


def test_millions_of_bad_lines_cost_bounded_memory_and_output(tmp_path: Path) -> None:
    """Found when trying validate as an attacker: 5 MB of newlines took over ten minutes and 700 MB
    (one diagnostic kept and printed per line). Now each rule lists 100 lines and counts the rest."""
    import resource

    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n" * 5_000_000 + b"[1]\n" * 200_000 + b"{}\n" * 200_000)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run([console_script(), "validate", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, env=ENV, timeout=120, check=False, preexec_fn=limit)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "4,999,900 more lines with problem TK-D013" in done.stderr
    assert "199,900 more lines with problem TK-D012" in done.stderr
    assert "199,899 more lines with problem TK-D014" in done.stderr  # every {} after the first repeats it
    assert len(done.stderr.splitlines()) < 2_000
