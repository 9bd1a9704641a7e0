"""The image's steps without a Docker engine: the Dockerfile's own commands build the wheel and
install it into a fresh virtualenv; an unprivileged user then migrates, bootstraps and serves
from an empty directory, as the container does in its /data volume."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PASSWORD = "deploy test password 1"
RUNUSER = shutil.which("runuser") or "runuser"


def _reachable_by_others(path: Path) -> bool:
    return all(os.stat(part).st_mode & 0o001 for part in [path, *path.parents])


def base_python() -> str | None:
    """A Python 3.11+ the unprivileged user can run (ours may live in root's home)."""
    candidates = [
        sys.executable,
        *(
            shutil.which(name, path="/usr/local/bin:/usr/bin")
            for name in ("python3.13", "python3.12", "python3.11")
        ),
    ]
    for candidate in candidates:
        if candidate and _reachable_by_others(Path(candidate).resolve()):
            base = subprocess.run(  # noqa: S603
                [candidate, "-c", "import sys, venv; print(sys.base_prefix)"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if base.returncode == 0 and _reachable_by_others(Path(base.stdout.strip())):
                return candidate
    return None


PYTHON = base_python()

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runuser") is None or PYTHON is None,
        reason="needs root, runuser, and a Python an unprivileged user can run",
    ),
]


def marked(label: str) -> str:
    """The instruction after `# test: <label>` in the Dockerfile, continuation lines joined."""
    match = re.search(rf"^# test: {label}\n(.*?[^\\])\n", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert match, f"the Dockerfile lost its '# test: {label}' line"
    return match.group(1).replace("\\\n", " ")


def image_environment(data: Path) -> dict[str, str]:
    match = re.search(r"^ENV (.*?[^\\])\n", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert match
    pairs = shlex.split(match.group(1).replace("\\\n", " "))
    env = dict(pair.split("=", 1) for pair in pairs)
    return {name: value.replace("/data", str(data)) for name, value in env.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def image() -> Iterator[Path]:
    """A directory laid out like the image: venv/ (the wheel installed), data/ (the volume,
    owned by nobody)."""
    top = Path(tempfile.mkdtemp(prefix="access-api-image-"))
    top.chmod(0o755)
    try:
        wheels = top / "wheels"
        build = marked("wheel").removeprefix("RUN ").replace("/wheels", str(wheels))
        assert build.startswith("pip wheel ")
        subprocess.run(  # noqa: S603 - the Dockerfile's own command
            [sys.executable, "-m", *shlex.split(build)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )
        venv = top / "venv"
        assert PYTHON is not None
        subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)  # noqa: S603
        install = marked("install").removeprefix("RUN ")
        install = install.replace("/tmp/constraints.txt", str(ROOT / "constraints.txt"))  # noqa: S108
        wheel = next(wheels.glob("*.whl"))
        install = install.replace("/wheels/*.whl", str(wheel))
        assert install.startswith("pip install ")
        subprocess.run(  # noqa: S603
            [str(venv / "bin" / "python"), "-m", *shlex.split(install)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        data = top / "data"
        data.mkdir(mode=0o700)
        shutil.chown(data, "nobody", "nogroup")
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def as_nobody(image: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{image / 'venv' / 'bin'}:/usr/bin:/bin",
        **image_environment(image / "data"),
    }
    return subprocess.run(  # noqa: S603
        [RUNUSER, "-u", "nobody", "--", *args],
        cwd=image / "data",
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def serve(image: Path) -> tuple[subprocess.Popen[str], str]:
    command = json.loads(marked("serve").removeprefix("CMD "))
    assert command[:2] == ["access-api", "serve"]
    port = free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {"PATH": f"{image / 'venv' / 'bin'}:/usr/bin:/bin", **image_environment(image / "data")}
    server = subprocess.Popen(  # noqa: S603
        [RUNUSER, "-u", "nobody", "--", *command],
        cwd=image / "data",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):  # noqa: S310
                return server, base
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                output = server.communicate()[0]
                pytest.fail(f"the server did not start:\n{output}")
            time.sleep(0.2)


def stop(server: subprocess.Popen[str]) -> str:
    server.terminate()
    return server.communicate(timeout=15)[0]


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_installed_wheel_migrates_bootstraps_and_serves_as_an_unprivileged_user(
    image: Path,
) -> None:
    assert not (image / "venv" / "bin" / "alembic.ini").exists()

    # Before migrating: bootstrap says what to do, and the server is not ready.
    early = as_nobody(
        image, "access-api", "bootstrap", "--name", "Image MSP", "--domain-prefix", "image",
        "--admin-email", "admin@image.example.com", check=False,
    )  # fmt: skip
    assert early.returncode == 2, early.stderr
    assert "access-api migrate" in early.stderr
    assert "Traceback" not in early.stderr
    server, base = serve(image)
    try:
        status, body = get(f"{base}/readyz")
        assert (status, body["code"]) == (503, "schema_behind")
    finally:
        stop(server)

    migrated = as_nobody(image, "access-api", "migrate", check=False)
    assert migrated.returncode == 0, migrated.stderr
    (image / "data" / "password").write_text(PASSWORD)
    shutil.chown(image / "data" / "password", "nobody", "nogroup")
    booted = as_nobody(
        image, "access-api", "bootstrap", "--name", "Image MSP", "--domain-prefix", "image",
        "--admin-email", "admin@image.example.com", "--admin-password-file", "password",
    )  # fmt: skip
    assert "Created MSP 'Image MSP'" in booted.stdout
    assert "http://127.0.0.1:8000/v1/auth/login" in booted.stdout
    assert (image / "data" / "access-api.db").exists()
    assert (image / "data" / ".access-api-secret").stat().st_uid != 0

    server, base = serve(image)
    try:
        assert get(f"{base}/readyz") == (200, {"status": "ready"})
        login = urllib.request.Request(  # noqa: S310 - loopback
            f"{base}/v1/auth/login",
            data=json.dumps({"email": "admin@image.example.com", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9"},
        )
        with urllib.request.urlopen(login, timeout=5) as response:  # noqa: S310
            assert "access_token" in json.loads(response.read())
    finally:
        output = stop(server)
    # JSON lines, one per request; the forged X-Forwarded-For was not believed.
    # (runuser may print its own notice on the same line as a log line as the server stops)
    lines = [json.loads(line[line.index("{") :]) for line in output.splitlines() if "{" in line]
    requests = [line for line in lines if line["logger"] == "access_api.access"]
    assert any(line["route"] == "/v1/auth/login" and line["status"] == 200 for line in requests), (
        output
    )
    assert all(line["request_id"] != "-" for line in requests)
    assert {line["client"] for line in requests} == {"127.0.0.1"}
