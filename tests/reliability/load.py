"""The emulator under load and abuse, as figures (loopback only; bounded in count and time).

    python -m tests.reliability.load [--clients 1000] [--slow 300] [--oversized 20]

Starts ``tunekeeper emulator`` as its own process (what users run) and measures, against it:

1. a fault-free baseline: sequential ``GET /openai/files`` (p50/p99);
2. ``--clients`` concurrent clients, each on its own connection, five requests each;
3. abuse, all at once: ``--slow`` clients that send half a request and stall, ``--oversized``
   requests announcing 600 MB bodies to JSON routes and 2 MB chunked bodies (refused with 413),
   a broken multipart upload, while normal requests keep being sent and timed.

Prints errors, p50/p99 latencies of each phase, and the emulator's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

VERSION = "api-version=2025-04-01-preview"
KEY = "emulator-key"


def start() -> tuple[subprocess.Popen[str], str]:
    script = Path(sys.executable).parent / "tunekeeper"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "tunekeeper"]
    process = subprocess.Popen(
        [*command, "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        match = re.search(r"export AZURE_OPENAI_ENDPOINT=(\S+)", line)
        if match:
            url = match[1]
        if "Ctrl-C" in line:
            break
    return process, url


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no answers"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def timed_get(
    session: aiohttp.ClientSession, url: str, latencies: list[float], errors: list[str]
) -> None:
    started = time.perf_counter()
    try:
        async with session.get(f"{url}/openai/files?{VERSION}", headers={"api-key": KEY}) as response:
            await response.read()
            if response.status != 200:
                errors.append(str(response.status))
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        errors.append(type(exc).__name__)
        return
    latencies.append(time.perf_counter() - started)


async def baseline(url: str, count: int) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for _ in range(count):
            await timed_get(session, url, latencies, errors)
    return latencies, errors


async def many_clients(url: str, clients: int, each: int) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1)  # its own connection, like a separate process would have
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            for _ in range(each):
                await timed_get(session, url, latencies, errors)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


async def slow_client(host: str, port: int, hold: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /_emulator/faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"pattern": '
    )  # and then nothing more
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(), timeout=hold)
    except TimeoutError:
        pass
    writer.close()


async def oversized(session: aiohttp.ClientSession, url: str, statuses: list[int]) -> None:
    announced = {"Content-Length": str(600 * 1024 * 1024), "Content-Type": "application/json", "api-key": KEY}
    try:
        async with session.post(f"{url}/_emulator/faults", data=b"{" * 1024, headers=announced) as response:
            statuses.append(response.status)
    except aiohttp.ClientError:
        statuses.append(-1)  # the server answered 413 and closed before the announced body was sent

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(32):
            yield b"x" * 65536

    try:
        async with session.post(
            f"{url}/openai/fine_tuning/jobs?{VERSION}",
            data=chunks(),
            headers={"api-key": KEY, "Content-Type": "application/json"},
        ) as response:
            statuses.append(response.status)
    except aiohttp.ClientError:
        statuses.append(-1)


async def abuse(url: str, slow: int, big: int, normal: int) -> tuple[list[float], list[str], list[int], int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    slow_tasks = [asyncio.create_task(slow_client(host, int(port), hold=40)) for _ in range(slow)]
    await asyncio.sleep(1)
    statuses: list[int] = []
    latencies: list[float] = []
    errors: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        broken = await session.post(
            f"{url}/openai/files?{VERSION}",
            data=b"--b\r\ngarbage",
            headers={"api-key": KEY, "Content-Type": "multipart/form-data; boundary=b"},
        )
        statuses.append(broken.status)
        abusive = [asyncio.create_task(oversized(session, url, statuses)) for _ in range(big)]
        for _ in range(normal):
            await timed_get(session, url, latencies, errors)
        await asyncio.gather(*abusive)
    await asyncio.gather(*slow_tasks, return_exceptions=True)
    return latencies, errors, statuses, len(slow_tasks)


async def main_async(args: argparse.Namespace) -> None:
    process, url = start()
    try:
        lat, err = await baseline(url, 300)
        print(f"baseline, 300 sequential requests:       {percentiles(lat)}, errors {len(err)}")
        started = time.perf_counter()
        lat, err = await many_clients(url, args.clients, 5)
        took = time.perf_counter() - started
        print(
            f"{args.clients} concurrent clients x 5 requests: {percentiles(lat)}, errors {len(err)} "
            f"({len(lat) / took:.0f} requests/s)"
        )
        lat, err, statuses, held = await abuse(url, args.slow, args.oversized, 300)
        refused = Counter_of(statuses)
        print(
            f"during abuse ({held} stalled half-sent requests, {args.oversized} x 600 MB announced and "
            f"{args.oversized} x 2 MB chunked bodies, a broken multipart):"
        )
        print(f"  300 normal requests:                    {percentiles(lat)}, errors {len(err)}")
        print(f"  answers to the abusive requests:        {refused}")
        print(f"emulator peak memory (VmHWM):             {peak_memory_mb(process.pid):.0f} MB")
        print(f"emulator still serving afterwards:        {'yes' if process.poll() is None else 'NO'}")
    finally:
        process.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        process.wait(timeout=60)
        print(f"SIGTERM to exit:                          {time.perf_counter() - started:.1f} s")


def Counter_of(values: list[int]) -> str:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{'closed' if k == -1 else k} x{v}" for k, v in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--oversized", type=int, default=20)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
