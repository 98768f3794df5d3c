"""`rezeption serve` as an operator starts it: it refuses to listen beyond loopback with weak or equal
secrets (exit 2, one line, nothing bound), bounds the request head (rezeption.http_head: what is
still incomplete after a read of the socket may be 16 KB), closes idle keep-alive connections, and
on a really full disk (a 4 MB tmpfs in a private mount namespace) /ready says 503 and a write that
cannot be stored is a 503, not a 500.

Before (issue 11): the server started on 0.0.0.0 with `changeme`; a request head of 2 MB was
accepted (uvicorn's httptools has no limit); on a full disk writes answered 500 while /ready said 200.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import ROOT
from tests.faults import free_port, raw_exchange

from rezeption.calendars.calcom.webhook import signature_for
from rezeption.retell.signature import sign

REZEPTION = [sys.executable, "-m", "rezeption.cli"]
STRONG_KEY = "rk_7Qm2vXz9LpR4tW8yB3nF6hJ"
STRONG_ADMIN = "as_K5dG1sV7cN0qE2uY9iO4pL"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
    return {
        **clean,
        "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rezeption.db'}",
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
    }


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize(
    ("secrets", "said"),
    [
        (
            {"REZEPTION_ENVIRONMENT": "test"},  # its defaults are the placeholder (development's are not)
            ["REZEPTION_RETELL_API_KEY is weak", "REZEPTION_ADMIN_SECRET is weak", "must differ"],
        ),
        (
            {"REZEPTION_RETELL_API_KEY": "changemechangeme", "REZEPTION_ADMIN_SECRET": STRONG_ADMIN},
            ["REZEPTION_RETELL_API_KEY is weak", "repeated"],
        ),
        (
            {"REZEPTION_RETELL_API_KEY": STRONG_KEY, "REZEPTION_ADMIN_SECRET": STRONG_KEY},
            ["are the same; they must differ"],
        ),
    ],
    ids=["defaults", "repeated-placeholder", "equal"],
)
@pytest.mark.parametrize("environment", ["development", "test"])
def test_serve_beyond_loopback_refuses_weak_or_equal_secrets(
    env: dict[str, str], secrets: dict[str, str], said: list[str], environment: str
) -> None:
    port = free_port()
    began = time.monotonic()
    done = subprocess.run(
        [*REZEPTION, "serve", "--host", "0.0.0.0", "--port", str(port)],
        env={**env, "REZEPTION_ENVIRONMENT": environment, **secrets},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - began < 15
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("rezeption: refusing to serve on 0.0.0.0 with weak secrets: ")
    for words in said:
        assert words in line
    for variable, value in secrets.items():
        assert variable == "REZEPTION_ENVIRONMENT" or value not in line, "a secret is never printed"
    assert port_is_free(port), "nothing was bound"


def test_make_run_needs_no_secrets_and_changeme_signs_nothing(env: dict[str, str], tmp_path: Path) -> None:
    """Development with no secrets set: the server starts (what `make run` does) with secrets
    generated for this installation, and a request signed with `changeme` is refused.

    Before (issue 11): the default key was `changeme`, and a request signed with it was accepted."""
    body = json.dumps({"event": "call_inbound", "call_inbound": {"to_number": "+493012345670"}}).encode()
    with served(env) as base:
        assert httpx.get(f"{base}/health").status_code == 200
        generated = json.loads((tmp_path / "dev-secrets.json").read_text())["REZEPTION_RETELL_API_KEY"]
        stamp = int(time.time() * 1000)
        answers = {
            key: httpx.post(
                f"{base}/retell/inbound",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Retell-Signature": sign(body, key, stamp + i),
                },
            ).status_code
            for i, key in enumerate(("changeme", generated))
        }
    assert answers == {"changeme": 401, generated: 200}


@pytest.fixture
def served_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "REZEPTION_HTTP_KEEP_ALIVE_TIMEOUT": "1", "REZEPTION_LOG_LEVEL": "warning"}


class served:
    """`rezeption serve` on a free loopback port until the block ends."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.port = env, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [*REZEPTION, "serve", "--migrate", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not come up")

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=20)


def test_serve_refuses_an_oversized_request_head_and_closes_idle_connections(
    served_env: dict[str, str],
) -> None:
    server = served(served_env)
    with server as base:
        ok = raw_exchange(server.port, [b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
        assert ok.startswith(b"HTTP/1.1 200")
        padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1024))  # 1 MB
        refused = raw_exchange(server.port, [b"GET /health HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n"])
        assert not refused.startswith(b"HTTP/1.1 200"), "a 1 MB request head was accepted"
        assert refused == b"" or refused.startswith(b"HTTP/1.1 4")
        # keep-alive: after its answer an idle connection is closed (REZEPTION_HTTP_KEEP_ALIVE_TIMEOUT=1)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            began, received = time.monotonic(), b""
            while chunk := conn.recv(65536):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200")
            assert time.monotonic() - began < 5, "the idle connection was closed by the server"
        assert httpx.get(f"{base}/health").status_code == 200


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || exit 3"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return probe.returncode == 0


FULL_DISK = r"""
set -e
mount -t tmpfs -o size=4m tmpfs "$DIR"
"$PY" -m rezeption.cli db upgrade >/dev/null
"$PY" -m rezeption.cli tenants load "$SALON" >/dev/null
"$PY" -m rezeption.cli serve --port "$PORT" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT TERM
"$PY" -c "
import httpx, sys, time
for _ in range(200):
    try:
        if httpx.get('http://127.0.0.1:$PORT/ready', timeout=1).status_code == 200: sys.exit(0)
    except httpx.TransportError: pass
    time.sleep(0.1)
sys.exit(1)"
echo ready
dd if=/dev/zero of="$DIR/filler" bs=65536 2>/dev/null || true
echo full
wait $server
"""


@pytest.fixture
def full_disk_server(env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """A server whose SQLite file lies on a 4 MB tmpfs that is filled up after start-up."""
    if not can_mount_tmpfs():
        pytest.skip("no private mount namespace here (unshare -rm); tests/integration covers the check")
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", FULL_DISK],
        env={
            **env,
            "DIR": str(disk),
            "PY": sys.executable,
            "PORT": str(port),
            "SALON": str(ROOT / "salons" / "friseur1-calcom.yaml"),
            "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{disk / 'rezeption.db'}",
            "REZEPTION_EMBEDDED_WORKER": "off",
            "REZEPTION_DB_MIN_FREE_MB": "1",
        },
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", "the server on the small disk did not start"
        assert proc.stdout.readline().strip() == b"full"
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_full_disk_is_not_ready_and_a_write_is_a_503_not_a_500(full_disk_server: int) -> None:
    base = f"http://127.0.0.1:{full_disk_server}"
    ready = httpx.get(f"{base}/ready", timeout=10)
    assert ready.status_code == 503
    assert "disk" in ready.json()["problem"]
    body = json.dumps({"triggerEvent": "BOOKING_CREATED", "payload": {"uid": "full-disk-uid-1"}}).encode()
    webhook = httpx.post(
        f"{base}/calcom/webhooks/friseur1-calcom",
        content=body,
        headers={"X-Cal-Signature-256": signature_for("whsec_friseur1_demo", body)},
        timeout=10,
    )
    assert webhook.status_code == 503, webhook.text
    assert webhook.headers["retry-after"] == "5"
    assert httpx.get(f"{base}/health").status_code == 200
