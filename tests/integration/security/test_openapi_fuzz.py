"""schemathesis over our OpenAPI document, every request signed as Retell (and Cal.com) sign: no
generated request, valid or not, gets a 5xx or hangs (each is bounded by a 10 s timeout).

The document is the app's own (`app.openapi()`), with the bodies our raw-body routes read added
from the wire models (call_inbound, call events, Cal.com's webhook), since they are not declared
there. Each operation gets valid and invalid examples (schemathesis' positive and negative modes);
three in four carry a real call of the demo salon in place of the generated one (and the right
function name), and some arguments a caller would say (services, days, times, names, numbers, and
references read out earlier in the run), so they reach the booking use cases instead of stopping
at "which salon?" or "which service?".
Derandomized and bounded (`REZEPTION_FUZZ_EXAMPLES` per operation, 40 by default) so `make test`
stays short; raise it (and set `REZEPTION_FUZZ_RANDOM=1` for a new seed each run) to look harder.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import re
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis import GenerationMode
from tests.integration.retell_adapter.conftest import AGENT, API_KEY, CALLER, SALON_NUMBER
from tests.integration.security.conftest import CALCOM_SALON, CALCOM_SECRET

from rezeption.calendars.calcom.webhook import signature_for
from rezeption.domain.clock import FixedClock
from rezeption.retell.signature import sign
from rezeption.retell.wire import InboundEnvelope, WebhookEnvelope

Case = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]
EXAMPLES = int(os.environ.get("REZEPTION_FUZZ_EXAMPLES", "40"))
RANDOM = os.environ.get("REZEPTION_FUZZ_RANDOM", "") == "1"
MOSTLY = st.integers(0, 3).map(bool)  # True three times in four
REFERENCE = re.compile(r'"referenz":\s*"([0-9a-z]+-[a-z2-7]{16})"')
TIMEOUT = 10.0  # seconds a request may take before it counts as a hang
CALCOM_BODY = {
    "type": "object",
    "properties": {
        "triggerEvent": {"type": "string"},
        "createdAt": {"type": "string"},
        "payload": {"type": "object", "properties": {"uid": {"type": "string"}}},
    },
}


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the raw-body routes' bodies declared."""
    doc = copy.deepcopy(app.openapi())
    components = doc.setdefault("components", {}).setdefault("schemas", {})

    def body(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    doc["paths"]["/retell/inbound"]["post"]["requestBody"] = body(InboundEnvelope)
    doc["paths"]["/retell/webhook"]["post"]["requestBody"] = body(WebhookEnvelope)
    calcom = doc["paths"]["/calcom/webhooks/{tenant_slug}"]["post"]
    calcom["requestBody"] = {"required": True, "content": {"application/json": {"schema": CALCOM_BODY}}}
    return doc


WORDS: dict[str, list[str]] = {
    "dienstleistung": ["Bartpflege", "Bart", "Damenhaarschnitt", "Färben", "Herren", "Dauerwelle", ""],
    "datum": ["Donnerstag", "morgen", "übermorgen", "5.11.", "2025-11-06", "nächste Woche", "Montag",
              "31.2.", "heute", "24.12.2030", "in drei Wochen", "Freitag den 13."],
    "uhrzeit": ["13 Uhr", "halb drei", "vormittags", "9:15", "25 Uhr", "14:07", "viertel nach drei", "0 Uhr"],
    "mitarbeiter": ["Anna", "Ben", "Clara", "egal", "Zora"],
    "name": ["Peter Schuster", "Gisela Schuster-Wendt", "Ö", "<b>Eva</b> Engel", "Max  HAMSTER"],
    "telefon": ["0151 12345678", "+4915123456789", "0", "+1 555 0100", "030 1234567", "+49 (0) 151-1"],
    "wochentag": ["Dienstag", "Sonntag", "Mo"],
}  # fmt: skip
WORDS["neues_datum"], WORDS["neue_uhrzeit"] = WORDS["datum"], WORDS["uhrzeit"]


def real_call(number: int) -> dict[str, Any]:
    return {
        "call_id": f"call_fuzz_{number}",
        "agent_id": AGENT,
        "from_number": CALLER,
        "to_number": SALON_NUMBER,
    }


def steered(path: str, body: Any, data: st.DataObject, references: list[str]) -> Any:
    """`body` with a real call of the demo salon in it (where a body has a call) and, for a
    function, some arguments replaced by words a caller says (and references read out before)."""
    if not isinstance(body, dict):
        return body
    number = data.draw(st.integers(0, 3), label="call")
    generated: dict[str, Any] = body["call"] if isinstance(body.get("call"), dict) else {}
    if path.startswith("/retell/functions/"):
        args = dict(body["args"]) if isinstance(body.get("args"), dict) else {}
        for key, said in WORDS.items():
            if data.draw(MOSTLY, label=f"say {key}"):
                args[key] = data.draw(st.sampled_from(said), label=key)
        say_reference: bool = data.draw(MOSTLY, label="say referenz")
        if references and say_reference:
            args["referenz"] = data.draw(st.sampled_from(references), label="referenz")
        return {
            **body,
            "name": path.rsplit("/", 1)[1],
            "call": {**generated, **real_call(number)},
            "args": args,
        }
    if path == "/retell/inbound":
        return {**body, "event": "call_inbound", "call_inbound": real_call(number)}
    if path == "/retell/webhook":
        return {**body, "call": {**generated, **real_call(number)}}
    return body


class Sender:
    """Sends a generated case signed as the real senders sign, at the server's (test) clock."""

    def __init__(self, base: str, clock: FixedClock) -> None:
        self.http = httpx.Client(base_url=base, timeout=TIMEOUT)
        self.clock = clock
        self.count = itertools.count(1)
        self.references: list[str] = []

    def send(self, case: Case, data: st.DataObject) -> httpx.Response:
        body = case.body
        steer = data.draw(MOSTLY, label="steer")
        if steer:
            body = steered(case.operation.path, body, data, self.references)
        if isinstance(body, bytes):
            raw = body
        elif type(body).__name__ == "NotSet":
            raw = b""
        else:
            raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        path = case.formatted_path
        if steer and case.operation.path.startswith("/calcom/"):
            path = f"/calcom/webhooks/{CALCOM_SALON}"
        stamp = int(self.clock.now().timestamp() * 1000) + next(self.count)
        headers = {
            "Content-Type": "application/json",
            "X-Retell-Signature": sign(raw, API_KEY, stamp),
            "X-Cal-Signature-256": signature_for(CALCOM_SECRET, raw),
        }
        try:
            return self.http.request(
                case.method.upper(), path, content=raw, params=case.query or None, headers=headers
            )
        except httpx.TimeoutException as error:
            raise AssertionError(
                f"{case.method} {path} hung (no answer in {TIMEOUT} s): {raw[:300]!r}"
            ) from error


def fuzz(doc: dict[str, Any], sender: Sender) -> list[str]:
    """Every operation of `doc` with EXAMPLES examples each; the operations tried."""
    tried = []
    for result in schemathesis.openapi.from_dict(doc).get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid document raises here
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
                  suppress_health_check=list(HealthCheck), print_blob=True)  # fmt: skip
        @given(case=cases, data=st.data())
        def no_server_error(case: Case, data: st.DataObject) -> None:
            answer = sender.send(case, data)
            assert answer.status_code < 500, (
                f"{case.method.upper()} {case.formatted_path} -> {answer.status_code}: {answer.text[:300]}"
            )

        no_server_error()
        tried.append(f"{operation.method.upper()} {operation.path}")
    return tried


async def test_no_generated_request_gets_a_server_error_or_hangs(
    app: FastAPI, server: str, clock: FixedClock
) -> None:
    sender = Sender(server, clock)
    try:
        tried = await asyncio.to_thread(fuzz, document(app), sender)
    finally:
        sender.http.close()
    assert {
        "POST /retell/functions/book_appointment",
        "POST /retell/inbound",
        "POST /retell/webhook",
        "POST /calcom/webhooks/{tenant_slug}",
        "GET /ready",
    } <= set(tried), tried
