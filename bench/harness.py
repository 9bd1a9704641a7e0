"""Processes under test and the load generator: uvicorn servers on loopback, wrk, RSS sampling."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEER_PYTHON = ROOT / ".venv-bench-peer" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a uvicorn server is one process here)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | str) -> float:
    """CPU time (user + system) a process has used so far: unlike throughput, it does not
    depend on what else the machine is running. A thread is "pid/task/tid"."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


@contextmanager
def serve(
    name: str, argv: Sequence[str], env: Mapping[str, str], port: int, ready_path: str
) -> Iterator[Server]:
    """Start a server on 127.0.0.1:port, wait until ready_path answers, stop it afterwards."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreters and arguments
            list(argv), env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log}\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(server.base_url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: see {log}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn_argv(python: Path | str, app: str, port: int, *, factory: bool = False) -> list[str]:
    argv = [str(python), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning", "--no-access-log"]
    return [*argv, "--factory"] if factory else argv


@dataclass
class Load:
    """What wrk measured: throughput, latency percentiles in ms, and the answers' statuses."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


_WRK_SCRIPT = """
local method, body, headers = "%(method)s", %(body)s, %(headers)s
request = function() return wrk.format(method, nil, headers, body) end
done = function(summary, latency, requests)
  io.write(string.format("BENCH {\\"requests\\": %%d, \\"micros\\": %%d, \\"p50\\": %%d, ",
    summary.requests, summary.duration, latency:percentile(50)))
  io.write(string.format("\\"p99\\": %%d, \\"non2xx\\": %%d, \\"errors\\": %%d}\\n",
    latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: str | None = None,
    threads: int = 1,
) -> Load:
    """Closed-loop load from wrk (a separate process, in C): `connections` requests in flight."""
    program = shutil.which("wrk")
    if program is None:
        raise SystemExit("the benchmarks need wrk on PATH (Debian/Ubuntu: apt-get install wrk)")
    lua_headers = (
        "{"
        + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items())
        + "}"
    )
    script = _WRK_SCRIPT % {
        "method": method,
        "body": "nil" if body is None else _lua_string(body),
        "headers": lua_headers,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        result = subprocess.run(  # noqa: S603
            [
                program,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                file.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(file.name)
    match = re.search(r"^BENCH (\{.*\})$", result.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk said:\n{result.stdout}\n{result.stderr}")
    figures = json.loads(match.group(1))
    elapsed = figures["micros"] / 1e6
    return Load(
        requests=figures["requests"],
        seconds=round(elapsed, 2),
        rps=round(figures["requests"] / elapsed, 1),
        p50_ms=round(figures["p50"] / 1000, 2),
        p99_ms=round(figures["p99"] / 1000, 2),
        non_2xx=figures["non2xx"],
        errors=figures["errors"],
    )


async def wrk_async(url: str, **options: Any) -> Load:
    return await asyncio.to_thread(wrk, url, **options)


@asynccontextmanager
async def rss_sampler(server: Server, every: float = 0.05) -> AsyncIterator[list[float]]:
    """Sample a server's RSS while the block runs; the list holds every sample (MB)."""
    samples = [server.rss_mb()]
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(server.rss_mb())
            await asyncio.sleep(every)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        stop.set()
        await task
        samples.append(server.rss_mb())


def python() -> str:
    return sys.executable
