"""Plays Retell's side of a phone call against our server: the signed call_inbound, the custom-LLM
socket (response_required with the growing transcript, ping_pong), and the signed call_ended.

Used by `rezeption call` (a call in the terminal), the dialog tests and `bench/dialog.py`. Every
frame of an answer is kept with the moment it arrived, so a caller of this class can see the
first chunk, the holding lines and the silences, as a phone line would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from rezeption.retell.signature import sign


@dataclass
class Answer:
    """The receptionist's answer to one response_required."""

    response_id: int
    chunks: list[tuple[float, str]] = field(default_factory=list)  # (seconds after asking, text)
    tools: list[dict[str, Any]] = field(default_factory=list)
    end_call: bool = False
    transfer_number: str | None = None

    @property
    def text(self) -> str:
        """The whole answer, as spoken."""
        return "".join(text for _, text in self.chunks).strip()

    @property
    def first_chunk(self) -> float:
        """Seconds from asking to the first words."""
        return self.chunks[0][0] if self.chunks else float("inf")

    @property
    def final(self) -> float:
        """Seconds from asking to the end of the answer."""
        return self.chunks[-1][0] if self.chunks else float("inf")


class CallRefused(Exception):
    """The server did not take the call (no salon, refused socket)."""


@dataclass
class RetellCall:
    """One call, connected."""

    socket: ClientConnection
    call_id: str
    greeting: str
    transcript: list[dict[str, str]] = field(default_factory=list)
    next_id: int = 1
    ended: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    async def say(self, words: str, *, patience: float = 30.0) -> Answer:
        """The caller speaks; wait for the complete answer (with its chunks as they arrived)."""
        self.transcript.append({"role": "user", "content": words})
        response_id = self.next_id
        self.next_id += 1
        await self.send_required(response_id)
        answer = await self.collect(response_id, patience=patience)
        self.transcript.append({"role": "agent", "content": answer.text})
        self.ended = answer.end_call or answer.transfer_number is not None
        return answer

    async def send_required(self, response_id: int, kind: str = "response_required") -> None:
        """Ask for a response to the transcript as it stands."""
        await self.socket.send(
            json.dumps({"interaction_type": kind, "response_id": response_id, "transcript": self.transcript})
        )

    async def collect(self, response_id: int, *, patience: float = 30.0) -> Answer:
        """The frames of one response until content_complete (other responses' frames are dropped)."""
        answer = Answer(response_id)
        started = time.perf_counter()
        async with asyncio.timeout(patience):
            while True:
                frame = json.loads(await self.socket.recv())
                kind = frame.get("response_type")
                if kind in {"tool_call_invocation", "tool_call_result"}:
                    answer.tools.append(frame)
                    continue
                if kind != "response" or frame.get("response_id") != response_id:
                    continue
                if frame.get("content"):
                    answer.chunks.append((time.perf_counter() - started, frame["content"]))
                if frame.get("content_complete"):
                    answer.end_call = bool(frame.get("end_call"))
                    answer.transfer_number = frame.get("transfer_number")
                    return answer

    async def ping(self, timestamp: int) -> int | None:
        """Send ping_pong; the timestamp the server echoes."""
        await self.socket.send(json.dumps({"interaction_type": "ping_pong", "timestamp": timestamp}))
        async with asyncio.timeout(5):
            while True:
                frame = json.loads(await self.socket.recv())
                if frame.get("response_type") == "ping_pong":
                    echoed = frame.get("timestamp")
                    return echoed if isinstance(echoed, int) else None


class RetellPhone:
    """Places calls to a rezeption server at `base_url` as Retell would."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self._http = http
        self.now_ms = now_ms  # Retell signs with its clock: the server's, when that one is set
        self._sent = 0

    def _signed(self, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(body, ensure_ascii=False).encode()
        self._sent += 1  # Retell's clock moves between two requests: never one signature twice
        stamp = self.now_ms() + self._sent
        return raw, {"Content-Type": "application/json", "X-Retell-Signature": sign(raw, self.api_key, stamp)}

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """A signed POST, as Retell sends it."""
        raw, headers = self._signed(body)
        if self._http is not None:
            return await self._http.post(f"{self.base_url}{path}", content=raw, headers=headers)
        async with httpx.AsyncClient(timeout=15) as http:
            return await http.post(f"{self.base_url}{path}", content=raw, headers=headers)

    async def call(
        self,
        call_id: str,
        *,
        from_number: str | None,
        to_number: str | None = None,
        agent_id: str | None = None,
    ) -> RetellCall:
        """call_inbound, then the socket (Retell retries the connection: so do we), then the greeting."""
        inbound = {
            "call_id": call_id,
            "from_number": from_number,
            "to_number": to_number,
            "agent_id": agent_id,
        }
        response = await self.post("/retell/inbound", {"event": "call_inbound", "call_inbound": inbound})
        if response.status_code != 200 or not response.json().get("call_inbound"):
            raise CallRefused(f"call_inbound answered {response.status_code}: {response.text[:200]}")
        url = f"{self.base_url.replace('http', 'ws', 1)}/retell/llm/{call_id}"
        socket: ClientConnection | None = None
        for attempt in range(20):  # the call is recorded just after call_inbound answers
            try:
                socket = await connect(url, open_timeout=7, max_size=2**20)
                break
            except InvalidStatus as error:
                if attempt == 19:
                    raise CallRefused(f"the socket was refused: {error}") from error
                await asyncio.sleep(0.05)
        assert socket is not None
        config: dict[str, Any] = {}
        async with asyncio.timeout(15):
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("response_type") == "config":
                    config = frame.get("config", {})
                if frame.get("response_type") == "response" and frame.get("response_id") == 0:
                    greeting = str(frame.get("content", ""))
                    break
        call = RetellCall(socket, call_id, greeting, config=config)
        if greeting:
            call.transcript.append({"role": "agent", "content": greeting})
        return call

    async def hang_up(
        self,
        call: RetellCall,
        *,
        from_number: str | None,
        to_number: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Close the socket and send call_ended with the transcript (signed)."""
        await call.socket.close()
        now = self.now_ms()
        transcript = "\n".join(
            f"{'Agent' if u['role'] == 'agent' else 'User'}: {u['content']}" for u in call.transcript
        )
        body = {
            "event": "call_ended",
            "call": {
                "call_id": call.call_id,
                "from_number": from_number,
                "to_number": to_number,
                "agent_id": agent_id,
                "end_timestamp": now,
                "transcript": transcript,
            },
        }
        await self.post("/retell/webhook", body)
