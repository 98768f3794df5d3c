"""Benchmark: 50 phone calls at once over Retell's custom-LLM socket, against a running server.

Two runs, each with its own fresh server process (`rezeption serve`, SQLite, the demo salon, the
clock started at Monday 7 December 2026, 08:00 Berlin): the local calendar, and Cal.com (our
emulator, its real 120 requests a minute per key, slots and creates answering after 0.8-1.2 s).
Each call plays Retell (`emulators.retell.caller`): signed call_inbound, the socket, the caller's
lines with ~1 s of "speech" between them, signed call_ended. The 50 calls start together and ask
for a service on a day of the coming week; every fifth asks for a time another caller asks for
too, so some hear "leider" and pick an alternative.

Per answer: the first chunk (response_required -> first words), the final chunk, and silences:
while the server streams holding lines, the caller hears each for as long as it takes to speak
(`dialog.voice.speaking_time`, the estimate the server schedules its holding lines by); a silence
is the time between the end of what was heard and the next chunk. `max_frame_gap_ms` is the
plain longest time between two chunks of one answer, speech not counted.
Counted from the outside afterwards: `completed` = calls that ended with a goodbye and whose
appointment the database holds, confirmed, exactly once.

Targets (issue 15): first_chunk_p99_ms < 300 in both runs, no silence over 1,000 ms.
Prints the figures and writes bench/results/dialog.json. Run: .venv/bin/python bench/dialog.py
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from rezeption.dialog.voice import speaking_time
from rezeption.emulators.retell.caller import Answer, RetellPhone

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CALLS = 50
API_KEY = "key_bench_0123456789abcdef"
CLOCK_START = "2026-12-07T08:00:00+01:00"  # a Monday; the salon opens Tuesday
LATENCY = {"min": 0.8, "max": 1.2}
CHOOSE = ("Passt Ihnen eine dieser Zeiten?", "Welche Uhrzeit passt Ihnen", "Was passt Ihnen?")
MAX_ROUNDS = 6
FIRST = ["Lena", "Paul", "Marie", "Jonas", "Sophie", "Felix", "Emma", "Lukas", "Hanna", "Tim"]
LAST = ["Vogel", "Krause", "Lehmann", "Brandt", "Seidel"]
DAYS = ["am Dienstag", "am Mittwoch", "am Donnerstag", "am Freitag", "am Samstag"]
SERVICES = [
    ("Herrenhaarschnitt", 30),
    ("Damenhaarschnitt", 60),
    ("Bartpflege", 20),
    ("Kinderhaarschnitt", 30),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers at {url}")


def script(index: int) -> tuple[str, list[str]]:
    """The caller's name and lines: a service, a day and a time; every fifth shares its time."""
    name = f"{FIRST[index % len(FIRST)]} {LAST[index // len(FIRST) % len(LAST)]}"
    service, _ = SERVICES[index % len(SERVICES)]
    day = DAYS[index % len(DAYS)]
    slot = index if index % 5 else index - 1  # every fifth asks for its neighbour's time
    hour = 10 + (slot // len(DAYS)) % 4
    minute = (slot * 15) % 60
    when = f"{day} um {hour}:{minute:02d}"
    return name, [f"{service} {when}, {name}", "ja", "nein danke, tschüss"]


def answer_figures(answer: Answer) -> tuple[float, float, float, float]:
    """First chunk, final chunk, longest silence, longest time between chunks (seconds)."""
    heard_until = answer.chunks[0][0] + speaking_time(answer.chunks[0][1])
    silence = frame_gap = 0.0
    for (previous, _), (at, text) in zip(answer.chunks, answer.chunks[1:], strict=False):
        silence = max(silence, at - heard_until)
        frame_gap = max(frame_gap, at - previous)
        heard_until = max(heard_until, at) + speaking_time(text)
    return answer.first_chunk, answer.final, silence, frame_gap


async def one_call(phone: RetellPhone, index: int, to_number: str) -> dict[str, Any]:
    name, lines = script(index)
    call = await phone.call(f"call_bench_{index:03d}_{os.getpid()}", from_number=f"+49151{index:08d}",
                            to_number=to_number)  # fmt: skip
    answers: list[Answer] = []
    picks = random.Random(index)
    for line in lines:
        await asyncio.sleep(1.0)  # the caller speaking
        answer = await call.say(line)
        answers.append(answer)
        for _ in range(MAX_ROUNDS):  # taken: pick one of the times offered, as a caller would
            if "noch einmal versuchen" in answer.text:  # the calendar is busy: yes, try again
                await asyncio.sleep(1.0)
                answer = await call.say("Ja, versuchen Sie es bitte noch einmal")
                answers.append(answer)
                continue
            if not any(question in answer.text for question in CHOOSE):
                break
            await asyncio.sleep(1.0)
            answer = await call.say(picks.choice(["die erste", "die zweite", "die dritte"]))
            answers.append(answer)
            if "Soll ich den Termin so eintragen?" in answer.text:
                await asyncio.sleep(1.0)
                answer = await call.say("ja")
                answers.append(answer)
        if call.ended:
            break
    await phone.hang_up(call, from_number=f"+49151{index:08d}", to_number=to_number)
    return {
        "name": name,
        "ended": call.ended,
        "answers": [answer_figures(a) for a in answers],
        "transcript": [f"{u['role']}: {u['content']}" for u in call.transcript],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)


def run(mode: str, workdir: Path) -> dict[str, Any]:
    database = workdir / f"{mode}.db"
    port = free_port()
    env = {
        **os.environ,
        "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "REZEPTION_RETELL_API_KEY": API_KEY,
        "REZEPTION_CLOCK_START": CLOCK_START,
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_LOG_LEVEL": "warning",
        "REZEPTION_PORT": str(port),
    }
    salon_file = ROOT / "salons" / "friseur1.yaml"
    processes: list[subprocess.Popen[bytes]] = []
    emulator_port = 0
    if mode == "calcom":
        emulator_port = free_port()
        salon = yaml.safe_load((ROOT / "salons" / "friseur1-calcom.yaml").read_text(encoding="utf-8"))
        salon["calendar"]["settings"]["base_url"] = f"http://127.0.0.1:{emulator_port}"
        salon_file = workdir / "friseur1-calcom.yaml"
        salon_file.write_text(yaml.safe_dump(salon, allow_unicode=True), encoding="utf-8")
        processes.append(
            start(
                [
                    str(BIN / "rezeption"),
                    "calcom-emulator",
                    "--port",
                    str(emulator_port),
                    "--salon",
                    str(salon_file),
                ],
                env,
                workdir / "emulator.log",
            )
        )
        wait_for(f"http://127.0.0.1:{emulator_port}/_emulator/state")
        faults = [
            {"mode": "latency", "method": method, "path": path, "params": LATENCY}
            for method, path in (("GET", "/v2/slots"), ("POST", "/v2/bookings"))
        ]
        httpx.post(
            f"http://127.0.0.1:{emulator_port}/_emulator/faults", json={"rules": faults}
        ).raise_for_status()
    subprocess.run([str(BIN / "rezeption"), "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([str(BIN / "rezeption"), "tenants", "load", str(salon_file)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    to_number = yaml.safe_load(salon_file.read_text(encoding="utf-8"))["phone_numbers"][0]
    processes.append(
        start([str(BIN / "rezeption"), "serve", "--port", str(port)], env, workdir / f"{mode}.log")
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ready")
        started = time.perf_counter()
        results = asyncio.run(calls(f"http://127.0.0.1:{port}", to_number))
        seconds = time.perf_counter() - started
        calcom: dict[str, int] = {}
        if emulator_port:
            for entry in httpx.get(f"http://127.0.0.1:{emulator_port}/_emulator/requests").json():
                key = f"{entry['method']} {entry['path'].split('/')[2]} {entry['status']}"
                calcom[key] = calcom.get(key, 0) + 1
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    booked = booked_names(database)
    figures = [f for r in results if isinstance(r, dict) for f in r["answers"]]
    completed = sum(1 for r in results if isinstance(r, dict) and r["ended"] and booked.get(r["name"]) == 1)
    failures = [repr(r) for r in results if not isinstance(r, dict)]
    incomplete = [
        r["transcript"]
        for r in results
        if isinstance(r, dict) and not (r["ended"] and booked.get(r["name"]) == 1)
    ]
    return {
        "dialogs": CALLS,
        "completed": completed,
        "failed_calls": failures[:5],
        "incomplete_examples": incomplete[:3],
        "answers": len(figures),
        "first_chunk_p50_ms": round(statistics.median(f[0] for f in figures) * 1000, 1),
        "first_chunk_p99_ms": round(percentile([f[0] for f in figures], 0.99) * 1000, 1),
        "final_p50_ms": round(statistics.median(f[1] for f in figures) * 1000, 1),
        "final_p99_ms": round(percentile([f[1] for f in figures], 0.99) * 1000, 1),
        "max_gap_ms": round(max(f[2] for f in figures) * 1000, 1),
        "max_frame_gap_ms": round(max(f[3] for f in figures) * 1000, 1),
        "answers_with_holding_line": sum(1 for f in figures if f[3] > 0),
        "seconds": round(seconds, 1),
        "calcom_requests": dict(sorted(calcom.items())),
    }


async def calls(base: str, to_number: str) -> list[Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        clock_start = int(time.time() * 1000)
        offset = int(_parse(CLOCK_START) * 1000) - clock_start
        phone = RetellPhone(base, API_KEY, http=http, now_ms=lambda: int(time.time() * 1000) + offset)
        return await asyncio.gather(
            *(one_call(phone, i, to_number) for i in range(CALLS)), return_exceptions=True
        )


def _parse(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def booked_names(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT c.name, count(*) FROM appointments a JOIN customers c ON c.id = a.customer_id "
            "WHERE a.status = 'confirmed' GROUP BY c.name"
        ).fetchall()
    return {name: count for name, count in rows}


def main() -> None:
    keep = os.environ.get("BENCH_KEEP")  # a folder to keep the servers' logs and databases in
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(keep or folder)
        workdir.mkdir(parents=True, exist_ok=True)
        report = {"calls": CALLS, "local": run("local", workdir), "calcom": run("calcom", workdir)}
    report["targets"] = {"first_chunk_p99_ms": 300, "max_gap_ms": 1000}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    out = ROOT / "bench" / "results" / "dialog.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
