"""OpenTelemetry with an OTLP endpoint set: `rezeption serve` (its own process) sends one trace per
phone call to a collector on 127.0.0.1 — each function call a span with the call id and the salon,
its database statements as children — and no name or number in any attribute."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from retell.lib.webhook_auth import symmetric
from tests.conftest import DEMO_SALON
from tests.e2e.test_server_and_cli import REZEPTION, cli, free_port

KEY = "key_trace_test_0123456789"
CALLER = "+4915123456789"
START = datetime.fromisoformat("2026-12-07T08:00:00+01:00")


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver: keeps every exported span."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[Any] = []


class _Receive(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        assert isinstance(self.server, Collector)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def attributes(span: Any) -> dict[str, str]:
    return {a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes}


def test_one_trace_per_call_with_its_functions_and_statements(tmp_path: Path, collector: Collector) -> None:
    env = {
        **os.environ,
        "REZEPTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'rezeption.db'}",
        "REZEPTION_ENVIRONMENT": "development",
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "dev-secrets.json"),
        "REZEPTION_RETELL_API_KEY": KEY,
        "REZEPTION_CLOCK_START": START.isoformat(),
        "REZEPTION_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
    }
    assert cli(env, "db", "upgrade").returncode == 0
    assert cli(env, "tenants", "load", str(DEMO_SALON)).returncode == 0
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*REZEPTION, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        when = {"datum": "Donnerstag", "uhrzeit": "13 Uhr"}
        calls = [
            ("call_trace_a", "check_availability", {"dienstleistung": "Bart", **when}),
            (
                "call_trace_a",
                "book_appointment",
                {"name": "Peter Schuster", "dienstleistung": "Bart", **when},
            ),
            ("call_trace_b", "list_services", {}),
        ]
        for sent, (call_id, name, args) in enumerate(calls, start=1):
            call = {"call_id": call_id, "agent_id": "agent_friseur1", "from_number": CALLER,
                    "to_number": "+493012345670"}  # fmt: skip
            body = json.dumps({"name": name, "args": args, "call": call}).encode()
            stamp = int((START + timedelta(seconds=sent)).timestamp() * 1000)
            headers = {
                "X-Retell-Signature": str(symmetric["sign"](body.decode(), KEY, stamp)),
                "Content-Type": "application/json",
            }
            reply = httpx.post(f"{base}/retell/functions/{name}", content=body, timeout=10, headers=headers)
            assert reply.status_code == 200 and reply.json()["ok"] is True, reply.text
    finally:
        proc.terminate()  # shutdown sends what the batch still holds
        proc.wait(timeout=20)
        log.close()
    assert "nothing can be instrumented" not in (tmp_path / "serve.log").read_text()
    functions = [s for s in collector.spans if s.name.startswith("function ")]
    assert sorted(s.name for s in functions) == [
        "function book_appointment", "function check_availability", "function list_services"
    ]  # fmt: skip
    by_call = {attributes(s)["rezeption.call_id"]: s.trace_id for s in functions}
    call_a = [s for s in functions if attributes(s)["rezeption.call_id"] == "call_trace_a"]
    assert len({s.trace_id for s in call_a}) == 1, "one call, one trace"
    assert by_call["call_trace_a"] != by_call["call_trace_b"]
    assert all(attributes(s)["rezeption.salon"] == "friseur1" for s in functions)
    booking = next(s for s in functions if s.name == "function book_appointment")
    children = [s for s in collector.spans if s.parent_span_id == booking.span_id]
    assert children and all(s.trace_id == booking.trace_id for s in children)
    assert any("db.statement" in attributes(s) or "db.query.text" in attributes(s) for s in children)
    every_value = " ".join(v for s in collector.spans for v in attributes(s).values())
    assert "Peter" not in every_value and "Schuster" not in every_value
    assert CALLER[3:] not in every_value and "23456789" not in every_value


def _wait_ready(base: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")
