"""`rezeption agent diff|publish|rollback|versions` with the official retell-sdk against our emulation
of Retell's management API on 127.0.0.1: published versions stay immutable, a publish interrupted in
the middle says what was done and finishes when run again, a rollback pins an earlier version."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from retell import Retell
from tests.conftest import DEMO_SALON, ROOT
from tests.faults import free_port
from typer.testing import CliRunner

from rezeption.agent.definition import render
from rezeption.agent.publish import AgentPublisher, AgentPublishError, PublishIncomplete
from rezeption.cli import app
from rezeption.emulators.retell.app import Fault, RetellState, create_app
from rezeption.store.salon_file import read_salon

BASE = "https://rezeption.example"
NUMBER = "+493012345670"


@pytest.fixture
def retell_api() -> Iterator[tuple[str, RetellState]]:
    """The emulation under uvicorn in a thread, with the demo salon's agent made once by hand."""
    state = RetellState()
    state.seed_agent("agent_friseur1", "llm_friseur1", [NUMBER])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    server.should_exit = True
    thread.join(timeout=10)


def publisher(url: str, key: str, agent_files: Path = ROOT / "agents" / "friseur1") -> AgentPublisher:
    salon = read_salon(DEMO_SALON)
    client = Retell(api_key=key, base_url=url, max_retries=0, timeout=5)
    return AgentPublisher(client, render(salon, agent_files, BASE), salon, BASE)


def test_publish_pins_a_published_version_and_diff_then_shows_nothing(
    retell_api: tuple[str, RetellState],
) -> None:
    url, state = retell_api
    live = publisher(url, state.api_key)
    assert any(change.startswith("llm.general_prompt") for change in live.diff())
    report = live.publish("git abc123")
    assert report.version == 0
    pinned = state.numbers[NUMBER]
    assert pinned["inbound_agents"] == [{"agent_id": "agent_friseur1", "weight": 1, "agent_version": 0}]
    assert pinned["inbound_webhook_url"] == f"{BASE}/retell/inbound"
    assert live.diff() == []
    versions = live.versions()
    assert [(v.number, v.published, v.pinned_on) for v in versions] == [(1, False, ()), (0, True, (NUMBER,))]
    assert versions[1].title is not None and versions[1].title.startswith("git abc123 #")
    assert state.agents["agent_friseur1"][0]["webhook_url"] == f"{BASE}/retell/webhook"
    assert "book_appointment" in {t["name"] for t in state.llms["llm_friseur1"][0]["general_tools"]}
    assert state.llms["llm_friseur1"][0]["general_prompt"].startswith(
        "Du bist die freundliche Telefon-Rezeption"
    )


def test_a_new_definition_is_a_new_version_and_rollback_pins_the_old_one(
    retell_api: tuple[str, RetellState], tmp_path: Path
) -> None:
    url, state = retell_api
    publisher(url, state.api_key).publish("git one")
    changed = tmp_path / "friseur1"
    changed.mkdir()
    for name in ("agent.yaml", "prompt.md"):
        (changed / name).write_text(
            (ROOT / "agents" / "friseur1" / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    prompt = changed / "prompt.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nSei besonders geduldig.\n", encoding="utf-8")
    second = publisher(url, state.api_key, changed)
    assert second.diff() == ["llm.general_prompt: " + second.diff()[0].split(": ", 1)[1]]
    assert second.publish("git two").version == 1
    first_prompt = state.llms["llm_friseur1"][0]["general_prompt"]
    assert "geduldig" not in first_prompt  # a published version never changes
    assert second.rollback(0) == [NUMBER]
    assert state.numbers[NUMBER]["inbound_agents"][0]["agent_version"] == 0
    with pytest.raises(AgentPublishError, match="version 2 is not a published version"):
        second.rollback(2)


def test_a_publish_stopped_in_the_middle_says_so_and_finishes_when_run_again(
    retell_api: tuple[str, RetellState],
) -> None:
    url, state = retell_api
    state.faults.append(Fault("PATCH /update-phone-number/*", count=1))
    live = publisher(url, state.api_key)
    with pytest.raises(PublishIncomplete) as stopped:
        live.publish("git abc123")
    assert stopped.value.failed == f"pin version 0 on {NUMBER}"
    assert "publish version 0" in stopped.value.done
    assert "Run `agent publish` again" in str(stopped.value)
    assert state.numbers[NUMBER]["inbound_agents"] == []  # nothing live yet, and it says so
    again = live.publish("git abc123")
    assert again.version == 0 and "version 0 already published with this definition" in again.steps
    assert [v.number for v in live.versions() if v.published] == [0]  # not published twice
    assert state.numbers[NUMBER]["inbound_agents"][0]["agent_version"] == 0


def test_a_refused_api_key_is_named(retell_api: tuple[str, RetellState]) -> None:
    url, _ = retell_api
    with pytest.raises(AgentPublishError, match="Retell refused the API key"):
        publisher(url, "key_wrong").versions()


def test_the_commands_publish_list_and_roll_back(retell_api: tuple[str, RetellState], tmp_path: Path) -> None:
    url, state = retell_api
    env = {
        "REZEPTION_RETELL_API_URL": url,
        "REZEPTION_RETELL_API_KEY": state.api_key,
        "REZEPTION_DEV_SECRETS_FILE": str(tmp_path / "s.json"),
    }
    runner = CliRunner()
    target = ["--salon", str(DEMO_SALON), "--base-url", BASE]
    published = runner.invoke(app, ["agent", "publish", *target], env=env)
    assert published.exit_code == 0, published.output
    assert f"version 0 live on {NUMBER}" in published.stdout
    listed = runner.invoke(app, ["agent", "versions", *target], env=env)
    assert "veröffentlicht" in listed.stdout and f"live auf {NUMBER}" in listed.stdout
    assert runner.invoke(app, ["agent", "diff", *target], env=env).exit_code == 0
    refused = runner.invoke(app, ["agent", "rollback", "5", *target], env=env)
    assert refused.exit_code == 2 and "not a published version" in refused.stderr
    production = {
        **env,
        "REZEPTION_ENVIRONMENT": "production",
        "REZEPTION_ADMIN_SECRET": "as_K5dG1sV7cN0qE2uY9iO4pL",
        "REZEPTION_RETELL_API_KEY": "rk_7Qm2vXz9LpR4tW8yB3nF6hJ",
    }
    plain = runner.invoke(
        app,
        ["agent", "publish", "--salon", str(DEMO_SALON), "--base-url", "http://x.example"],
        env=production,
    )
    assert plain.exit_code == 2 and "is not https" in plain.stderr
