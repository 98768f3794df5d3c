"""Every command in the README and in docs/ runs as written.

Each ```sh block of README.md and docs/*.md is read line by line and run from the repository root in
order, with a throwaway SQLite database and secrets (the documented commands themselves are not
changed) and the clock started on Monday 7 December 2026, 08:00 in Berlin
(`REZEPTION_CLOCK_START`), so "Dienstag" is always the same day. A comment saying "exit 1" expects
that exit code (a refusal the text explains); every other line must exit 0. Long-running commands
(`make run`, `make demo-calcom`, lines ending in `&`) start in the background and must become ready
on their documented port before the next line runs; they are stopped when the document is done.
`make test` is the one command not run here: CI runs it (`.ci/run`), and this test is part of it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
READY_URL = {
    "make run": "http://127.0.0.1:8000/ready",
    "make demo-calcom": "http://127.0.0.1:8001/ready",
}
CLOCK_START = "2026-12-07T08:00:00+01:00"


@dataclass(frozen=True)
class Command:
    """One documented command line."""

    text: str
    expected_exit: int
    background: bool
    where: str


def documented(path: Path) -> list[Command]:
    """The commands of every ```sh block in `path`, in order."""
    found: list[Command] = []
    content = path.read_text(encoding="utf-8")
    for block in SH_BLOCK.finditer(content):
        first_line = content[: block.start()].count("\n") + 2
        for offset, raw in enumerate(block.group(1).splitlines()):
            code, _, comment = raw.partition("  #")
            code = code.strip()
            if not code:
                continue
            background = code.endswith("&") or code in READY_URL
            found.append(
                Command(
                    text=code.removesuffix("&").strip(),
                    expected_exit=1 if "exit 1" in comment else 0,
                    background=background,
                    where=f"{path.relative_to(ROOT)}:{first_line + offset}",
                )
            )
    return found


def test_the_readme_starts_with_the_two_commands_and_ci_runs_make_test() -> None:
    readme = documented(ROOT / "README.md")
    assert [c.text for c in readme[:2]] == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == "make test"


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The documented commands' environment: a throwaway database and secrets, a known day."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REZEPTION_")}
    env.update(
        {
            "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rezeption.db'}",
            "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
            "REZEPTION_CLOCK_START": CLOCK_START,
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Long-running documented commands; their whole process groups are stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait_ready(command: Command, process: subprocess.Popen[bytes], log: Path) -> None:
    url = READY_URL.get(command.text)
    port_option = re.search(r"--port (\d+)", command.text)
    deadline = time.monotonic() + 180  # `make run` may install first
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{command.where}: `{command.text}` stopped: {log.read_text()[-2000:]}")
        try:
            if url is not None:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            elif port_option is not None:
                with socket.create_connection(("127.0.0.1", int(port_option.group(1))), timeout=1):
                    return
            else:
                raise AssertionError(f"{command.where}: a background command needs a known port")
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{command.where}: `{command.text}` was not ready: {log.read_text()[-2000:]}")


def run_document(path: Path, env: dict[str, str], started: list[subprocess.Popen[bytes]], logs: Path) -> None:
    for n, command in enumerate(documented(path)):
        if command.text == "make test":
            continue  # CI runs it, and this test runs inside it
        if command.background:
            log = logs / f"background-{n}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    command.text, shell=True, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            started.append(process)
            _wait_ready(command, process, log)
            continue
        done = subprocess.run(
            command.text, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
            check=False,
        )  # fmt: skip
        shown = f"{command.where}: `{command.text}`\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert done.returncode == command.expected_exit, shown
        assert "Traceback" not in done.stderr, shown


def test_every_readme_command_runs_as_written(
    environment: dict[str, str], background: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    run_document(ROOT / "README.md", environment, background, tmp_path)


@pytest.mark.parametrize("document", [p for p in DOCUMENTS if p.parent.name == "docs"], ids=lambda p: p.name)
def test_every_docs_command_runs_as_written(
    document: Path, environment: dict[str, str], background: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """docs/ start from a migrated database holding both demo salons (as after the README's tour)."""
    for setup in (
        ".venv/bin/rezeption db upgrade",
        ".venv/bin/rezeption tenants load salons/friseur1.yaml",
        ".venv/bin/rezeption tenants load salons/friseur1-calcom.yaml",
    ):
        done = subprocess.run(shlex.split(setup), cwd=ROOT, env=environment, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
    run_document(document, environment, background, tmp_path)
