"""The emulator as a network service under hostile input: its security model and its bounds.

Each test is an attack or a careless call that once broke it: any bearer token passing with a key
set, admin routes open to anyone, a clock advanced to 1e308 killing the data dir for good, file
imports that followed redirects (or told open ports from closed ones), bodies of any size, held
half-sent requests, a FIFO blocking the event loop, a broken multipart body answered with a
traceback, a fault latency that delayed shutdown by a minute. And the controller side: a redirect
from the endpoint is never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from aiohttp import web
from tunekeeper.cloud import connect
from tunekeeper.emulator import Emulator, EmulatorConfig
from tunekeeper.emulator.app import MAX_JSON_REQUEST_BYTES
from tunekeeper.emulator.store import EmulatorStateError
from tunekeeper.errors import PermanentCloudError

from .cloud_helpers import account_for
from .emulator_process import start_emulator, tunekeeper_command

KEY = "k3y-for-the-strict-emulator"
VERSION = "api-version=2025-04-01-preview"
DATA = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 12


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Emulator]:
    config = EmulatorConfig(api_key=KEY, require_auth=True, speed=1000.0, data_dir=tmp_path)
    with Emulator(config=config) as emu:
        yield emu


def _arm_url(emu: Emulator) -> str:
    return f"{emu.url}{emu.arm_account_path}/deployments?api-version=2024-10-01"


# -- authentication ------------------------------------------------------------------------------


def test_with_a_key_set_every_route_needs_exactly_that_key(strict: Emulator) -> None:
    files = f"{strict.url}/openai/files?{VERSION}"
    for headers in (
        {},
        {"Authorization": "Bearer x"},
        {"api-key": "wrong"},
        {"Authorization": "Basic " + KEY},
        {"Authorization": "Bearer tunekeeper-emulator-dev-token"},
    ):
        assert requests.get(files, headers=headers, timeout=10).status_code == 401, headers
        assert requests.get(_arm_url(strict), headers=headers, timeout=10).status_code == 401, headers
        assert requests.post(f"{strict.url}/_emulator/reset", headers=headers, timeout=10).status_code == 401
        assert (
            requests.post(
                f"{strict.url}/_emulator/faults",
                json={"pattern": "* /*", "status": 500},
                headers=headers,
                timeout=10,
            ).status_code
            == 401
        )
    for headers in ({"api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert requests.get(files, headers=headers, timeout=10).status_code == 200
        assert requests.get(f"{strict.url}/_emulator/faults", headers=headers, timeout=10).status_code == 200
    assert (
        requests.get(_arm_url(strict), headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code
        == 200
    )


async def test_tunekeeper_reaches_a_strict_emulator_with_its_key(strict: Emulator) -> None:
    async with await connect(account_for(strict), api_key=KEY) as cloud:
        assert await cloud.list_files() == []
        assert await cloud.list_deployments() == []


def test_open_mode_stays_as_it_was(emulator: Any) -> None:
    files = f"{emulator.url}/openai/files?{VERSION}"
    assert requests.get(files, headers={"Authorization": "Bearer anything"}, timeout=10).status_code == 200
    assert requests.get(files, headers={"api-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(files, headers={"api-key": emulator.config.api_key}, timeout=10).status_code == 200
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=10).status_code == 200


def test_the_cli_refuses_remote_without_a_key_and_prints_what_tunekeeper_reads(tmp_path: Path) -> None:
    refused = subprocess.run(
        [*tunekeeper_command(), "emulator", "--host", "0.0.0.0", "--allow-remote", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "needs --api-key" in refused.stderr
    process, exported = start_emulator("--port", "0", "--api-key", KEY)
    try:
        assert exported["AZURE_OPENAI_API_KEY"] == "<the"  # the key itself is never printed
        assert (
            requests.get(f"{exported['AZURE_OPENAI_ENDPOINT']}/_emulator/faults", timeout=10).status_code
            == 401
        )
        assert (
            requests.get(
                f"{exported['AZURE_OPENAI_ENDPOINT']}/_emulator/faults", headers={"api-key": KEY}, timeout=10
            ).status_code
            == 200
        )
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert KEY not in out + err


# -- the clock and the saved state ---------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["1e308", "NaN", "Infinity", "-1", "1e12", '"soon"'])
def test_absurd_clock_advances_are_refused_and_the_data_dir_survives(tmp_path: Path, seconds: str) -> None:
    with Emulator(data_dir=tmp_path, speed=1000.0) as emu:
        answer = requests.post(
            f"{emu.url}/_emulator/clock/advance",
            data=f'{{"seconds": {seconds}}}',
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalidPayload"
        client = openai.OpenAI(
            base_url=f"{emu.url}/openai",
            api_key="x",
            max_retries=0,
            default_headers={"api-key": "emulator-key"},
            default_query={"api-version": "2025-04-01-preview"},
        )
        assert client.files.create(file=("t.jsonl", DATA), purpose="fine-tune").status == "pending"
    with Emulator(data_dir=tmp_path):  # starts again on the same data dir
        pass


def test_a_damaged_saved_clock_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    with Emulator(data_dir=tmp_path):
        pass
    with sqlite3.connect(tmp_path / "emulator.sqlite3") as db:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_offset', 'null')")
    with pytest.raises(EmulatorStateError) as caught:
        Emulator(data_dir=tmp_path)
    assert str(tmp_path / "emulator.sqlite3") in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000]
)
def test_a_corrupt_database_is_a_clear_error_without_a_traceback(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "emulator.sqlite3").write_bytes(content)
    with pytest.raises(EmulatorStateError) as caught:
        Emulator(data_dir=tmp_path)
    assert str(tmp_path / "emulator.sqlite3") in caught.value.message
    result = subprocess.run(
        [*tunekeeper_command(), "emulator", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "emulator.sqlite3" in result.stderr and "Traceback" not in result.stderr


# -- file imports --------------------------------------------------------------------------------


@pytest.fixture
def redirector() -> Iterator[str]:
    """A loopback server that answers every request with a redirect to another host."""
    app = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://example.com/stolen.jsonl")

    app.router.add_route("*", "/{tail:.*}", redirect)
    emu = _AppThread(app)
    try:
        yield emu.url
    finally:
        emu.stop()


class _AppThread:
    def __init__(self, app: web.Application) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()


def _import(emu: Any, url: str) -> requests.Response:
    return requests.post(
        f"{emu.url}/openai/files/import?{VERSION}",
        headers={"api-key": emu.config.api_key},
        json={"purpose": "fine-tune", "filename": "x.jsonl", "content_url": url},
        timeout=30,
    )


def test_an_import_never_follows_a_redirect(emulator: Any, redirector: str) -> None:
    answer = _import(emulator, f"{redirector}/data.jsonl")
    assert answer.status_code == 400
    assert "follows no redirects" in answer.json()["error"]["message"]


def test_import_errors_do_not_tell_open_ports_from_closed_ones(emulator: Any, redirector: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    open_port = int(redirector.rsplit(":", 1)[1])
    messages = {
        _import(emulator, f"http://127.0.0.1:{port}/x").json()["error"]["message"].replace(str(port), "P")
        for port in (closed, open_port)
    }
    assert len(messages) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_the_data_dir_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jsonl")
    with Emulator(data_dir=tmp_path) as emu:
        started = time.monotonic()
        answer = _import(emu, (tmp_path / "pipe.jsonl").as_uri())
        assert time.monotonic() - started < 5
        assert answer.status_code == 400 and "only regular files" in answer.json()["error"]["message"]
        assert requests.get(f"{emu.url}/_emulator/clock", timeout=5).status_code == 200  # the loop is free


# -- bodies and slow clients ---------------------------------------------------------------------


def test_json_routes_refuse_big_bodies_before_reading_them(emulator: Any) -> None:
    big = b'{"pattern": "' + b"x" * (MAX_JSON_REQUEST_BYTES + 10) + b'"}'
    for url in (f"{emulator.url}/_emulator/faults", f"{emulator.url}/openai/fine_tuning/jobs?{VERSION}"):
        answer = requests.post(
            url,
            data=big,
            headers={"api-key": emulator.config.api_key, "Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 413, url
        assert "error" in answer.json()


def test_a_broken_multipart_body_is_a_400_without_a_traceback(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = [
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--b\r\ngarbage',
        b"not multipart at all",
        b"--b\r\n\r\n\r\n--b--\r\n",
    ]
    for body in bodies:
        answer = requests.post(
            f"{emulator.url}/openai/files?{VERSION}",
            data=body,
            timeout=30,
            headers={"api-key": emulator.config.api_key, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalidPayload"
    assert "Traceback" not in caplog.text and "Failed POST" not in caplog.text


def test_a_half_sent_request_blocks_no_one_and_its_wait_is_bounded(emulator: Any) -> None:
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as half:
        half.sendall(b"POST /_emulator/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        from tunekeeper.emulator.app import REQUEST_SECONDS
        from tunekeeper.emulator.server import IDLE_CONNECTION_SECONDS

        assert REQUEST_SECONDS <= 60 and IDLE_CONNECTION_SECONDS <= 60
    assert requests.get(f"{emulator.url}/_emulator/clock", timeout=5).status_code == 200


def test_fault_latency_is_bounded(emulator: Any) -> None:
    answer = requests.post(
        f"{emulator.url}/_emulator/faults", json={"pattern": "* /openai/*", "latency": 1e9}, timeout=10
    )
    assert answer.status_code == 400 and "latency" in answer.json()["error"]["message"]
    nan = requests.post(
        f"{emulator.url}/_emulator/faults",
        data='{"pattern": "* /openai/*", "retry_after": NaN}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert nan.status_code == 400


def test_sigterm_stops_promptly_while_a_slow_fault_holds_a_request(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"pattern": "* /openai/*", "latency": 60}]))
    process, exported = start_emulator("--port", "0", "--faults", str(faults))
    try:
        import threading

        def held() -> None:
            with contextlib.suppress(requests.RequestException):  # the server goes away mid-request
                requests.get(
                    f"{exported['AZURE_OPENAI_ENDPOINT']}/openai/files?{VERSION}",
                    headers={"api-key": "emulator-key"},
                    timeout=90,
                )

        threading.Thread(target=held, daemon=True).start()
        time.sleep(1)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()


# -- the controller never follows a redirect -----------------------------------------------------


async def test_the_cloud_layer_never_follows_a_redirect_to_another_host(redirector: str) -> None:
    from tunekeeper.resources import AccountSpec, AuthSpec

    account = AccountSpec(
        name="r",
        endpoint=redirector,
        management_endpoint=redirector,
        subscription_id="s",
        resource_group="g",
        account_name="a",
        auth=AuthSpec(kind="apiKey", api_key_env="UNUSED"),
    )
    async with await connect(account, api_key="k") as cloud:
        with pytest.raises(PermanentCloudError) as data_plane:
            await cloud.list_files()
        with pytest.raises(PermanentCloudError) as arm:
            await cloud.list_deployments()
    for caught in (data_plane, arm):
        assert "redirects to http://example.com/stolen.jsonl" in caught.value.message
        assert caught.value.hint is not None and "never follows" in caught.value.hint


@pytest.mark.slow  # waits out the idle timeout (30 s)
def test_half_sent_headers_are_closed_after_the_idle_timeout(emulator: Any) -> None:
    from tunekeeper.emulator.server import IDLE_CONNECTION_SECONDS

    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=IDLE_CONNECTION_SECONDS + 15) as half:
        half.sendall(b"GET /_emulator/clock HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
        started = time.monotonic()
        assert half.recv(1024) == b""  # the server closed it
        assert time.monotonic() - started < IDLE_CONNECTION_SECONDS + 10
