"""``tunekeeper emulator`` as users run it: prints what to export, serves the data plane with
those values, stops cleanly on Ctrl-C, keeps state in --data-dir, and refuses non-loopback hosts."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import openai

from .emulator_process import start_emulator, tunekeeper_command


def _serve(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    return start_emulator("--port", "0", "--data-dir", str(data_dir), "--speed", "1000")


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


def test_serves_with_the_printed_environment_and_stops_cleanly(tmp_path: Path) -> None:
    process, exported = _serve(tmp_path)
    try:
        assert set(exported) >= {"AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION",
                                 "AZURE_ARM_BASE_URL", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP",
                                 "AZURE_OPENAI_ACCOUNT"}
        client = openai.AzureOpenAI(azure_endpoint=exported["AZURE_OPENAI_ENDPOINT"],
                                    api_key=exported["AZURE_OPENAI_API_KEY"],
                                    api_version=exported["OPENAI_API_VERSION"], max_retries=0)
        uploaded = client.files.create(file=("notes.jsonl", b'{"custom_id": "1"}\n'), purpose="batch")
        client.close()
    finally:
        out, err = _stop(process)
    assert "stopped" in out and "Traceback" not in err

    process, exported = _serve(tmp_path)  # same data dir: the file is still there
    try:
        client = openai.AzureOpenAI(azure_endpoint=exported["AZURE_OPENAI_ENDPOINT"],
                                    api_key=exported["AZURE_OPENAI_API_KEY"],
                                    api_version=exported["OPENAI_API_VERSION"], max_retries=0)
        assert [f.id for f in client.files.list().data] == [uploaded.id]
        client.close()
    finally:
        _stop(process)


def test_refuses_a_non_loopback_host_without_allow_remote() -> None:
    result = subprocess.run([*tunekeeper_command(), "emulator", "--host", "0.0.0.0", "--port", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr and "Traceback" not in result.stderr


def test_a_custom_api_key_is_not_printed(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*tunekeeper_command(), "emulator", "--port", "0", "--api-key", "s3cret-value"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "Ctrl-C" in line:
            break
    out, _ = _stop(process)
    assert "s3cret-value" not in "".join(seen) + out
