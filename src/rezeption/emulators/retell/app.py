"""The Retell management endpoints the agent commands use, answering with the shapes retell-sdk
parses (reference: shared/reference/retell.md 6.3).

Versioning as Retell documents it: an agent and its Retell LLM share one version number; only the
latest draft can be changed; publishing makes it immutable and opens the next draft as its copy;
phone numbers pin an agent version. A fault list makes the next matching requests answer 500 (or
hang), so a publish can be interrupted in the middle. Development tool: the server never imports it.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Fault:
    """The next `count` requests whose "METHOD path" matches `pattern` fail (500) or hang."""

    pattern: str
    count: int = 1
    mode: str = "error"  # or "hang"


@dataclass
class RetellState:
    """Everything the emulation holds; tests read and seed it directly."""

    api_key: str = "key_retell_emulated"
    llms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> versions
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def seed_agent(self, agent_id: str, llm_id: str, numbers: list[str]) -> None:
        """An agent made once by hand in Retell's dashboard (version 0, a draft), and its numbers."""
        stamp = _now_ms()
        self.llms[llm_id] = [
            {"llm_id": llm_id, "version": 0, "is_published": False, "last_modification_timestamp": stamp}
        ]
        self.agents[agent_id] = [
            {
                "agent_id": agent_id,
                "version": 0,
                "is_published": False,
                "voice_id": "11labs-Adrian",
                "response_engine": {"type": "retell-llm", "llm_id": llm_id, "version": 0},
                "last_modification_timestamp": stamp,
            }
        ]
        for number in numbers:
            self.numbers[number] = {
                "phone_number": number,
                "phone_number_type": "retell-twilio",
                "inbound_agents": [],
                "last_modification_timestamp": stamp,
            }


def _draft(versions: list[dict[str, Any]]) -> dict[str, Any]:
    latest = versions[-1]
    if latest["is_published"]:
        raise HTTPException(409, "the latest version is published")
    return latest


def _version(versions: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    if wanted is None:
        return versions[-1]
    for item in versions:
        if str(item["version"]) == wanted:
            return item
    raise HTTPException(404, f"version {wanted} not found")


def create_app(state: RetellState | None = None) -> FastAPI:
    """The emulation as an ASGI app over `state`."""
    state = state or RetellState()
    app = FastAPI(title="Retell management emulation")
    app.state.retell = state

    @app.middleware("http")
    async def _auth_and_faults(request: Request, call_next: Any) -> Any:
        line = f"{request.method} {request.url.path}"
        state.requests.append(line)
        if request.headers.get("authorization") != f"Bearer {state.api_key}":
            return JSONResponse({"status": "error", "message": "Invalid API key"}, status_code=401)
        for fault in state.faults:
            if fault.count > 0 and fnmatch.fnmatch(line, fault.pattern):
                fault.count -= 1
                if fault.mode == "hang":
                    await asyncio.sleep(3600)
                return JSONResponse({"status": "error", "message": "Internal Server Error"}, status_code=500)
        return await call_next(request)

    def llm(llm_id: str) -> list[dict[str, Any]]:
        if llm_id not in state.llms:
            raise HTTPException(404, f"llm {llm_id} not found")
        return state.llms[llm_id]

    def agent(agent_id: str) -> list[dict[str, Any]]:
        if agent_id not in state.agents:
            raise HTTPException(404, f"agent {agent_id} not found")
        return state.agents[agent_id]

    @app.get("/get-retell-llm/{llm_id}")
    async def get_llm(llm_id: str, version: str | None = None) -> dict[str, Any]:
        return _version(llm(llm_id), version)

    @app.patch("/update-retell-llm/{llm_id}")
    async def update_llm(llm_id: str, request: Request) -> dict[str, Any]:
        draft = _draft(llm(llm_id))
        draft.update(await request.json(), last_modification_timestamp=_now_ms())
        return draft

    @app.get("/get-agent/{agent_id}")
    async def get_agent(agent_id: str, version: str | None = None) -> dict[str, Any]:
        return _version(agent(agent_id), version)

    @app.patch("/update-agent/{agent_id}")
    async def update_agent(agent_id: str, request: Request) -> dict[str, Any]:
        draft = _draft(agent(agent_id))
        body = await request.json()
        engine = body.pop("response_engine", None)
        if engine is not None:
            draft["response_engine"] = {**engine, "version": draft["version"]}
        draft.update(body, last_modification_timestamp=_now_ms())
        return draft

    @app.get("/list-agent-versions/{agent_id}")
    async def list_versions(agent_id: str) -> dict[str, Any]:
        items = [
            {
                "version": v["version"],
                "is_published": v["is_published"],
                "last_modification_timestamp": v["last_modification_timestamp"],
                "version_title": v.get("version_title"),
            }
            for v in reversed(agent(agent_id))
        ]
        return {"items": items, "has_more": False}

    @app.post("/publish-agent-version/{agent_id}")
    async def publish(agent_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        versions = agent(agent_id)
        draft = _draft(versions)
        if body.get("version") != draft["version"]:
            raise HTTPException(400, f"version {body.get('version')} is not the draft ({draft['version']})")
        llm_id = draft["response_engine"]["llm_id"]
        llm_draft = _draft(llm(llm_id))
        for item in (draft, llm_draft):
            item["is_published"] = True
        draft["version_title"] = body.get("version_title")
        following = draft["version"] + 1
        versions.append(
            {**copy.deepcopy(draft), "version": following, "is_published": False, "version_title": None}
        )
        versions[-1]["response_engine"]["version"] = following
        state.llms[llm_id].append({**copy.deepcopy(llm_draft), "version": following, "is_published": False})
        return JSONResponse(None)

    @app.get("/get-phone-number/{number}")
    async def get_number(number: str) -> dict[str, Any]:
        if number not in state.numbers:
            raise HTTPException(404, f"phone number {number} not found")
        return state.numbers[number]

    @app.patch("/update-phone-number/{number}")
    async def update_number(number: str, request: Request) -> dict[str, Any]:
        if number not in state.numbers:
            raise HTTPException(404, f"phone number {number} not found")
        body = await request.json()
        for pin in body.get("inbound_agents") or []:
            versions = agent(pin["agent_id"])
            pinned = _version(versions, str(pin.get("agent_version")))
            if not pinned["is_published"]:
                raise HTTPException(400, "only a published version can be pinned")
        state.numbers[number].update(body, last_modification_timestamp=_now_ms())
        return state.numbers[number]

    return app
