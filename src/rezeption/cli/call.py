"""`rezeption call`: a phone call in the terminal, through the same dialog engine and socket code
Retell uses. The caller types German; the salon's receptionist answers.

It rings the running server (`make run`) as Retell would: a signed call_inbound, the custom-LLM
socket, a signed call_ended. When no server answers on the configured port, it starts one for
the call on a free loopback port, on the same database. `--script FILE` replays a call (one
utterance per line, `#` comments) and exits 0 only when the receptionist ended the call.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
import uvicorn

from rezeption.cli.support import fail, load_settings, run_command, salon_route
from rezeption.settings import Settings, is_loopback

if TYPE_CHECKING:
    from rezeption.emulators.retell.caller import Answer


def read_script(path: Path) -> list[str]:
    """The caller's lines of a script: one utterance per line; blank lines and `#` comments skipped."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _seconds(value: float) -> str:
    return f"{value:.2f}".replace(".", ",") + " s"


def spoken(answer: Answer) -> str:
    """ "Rezeption (0,12 s): …" — with the first words' time when holding lines came first."""
    timing = _seconds(answer.final)
    if len(answer.chunks) > 1:
        timing = f"erste Worte {_seconds(answer.first_chunk)}, fertig {_seconds(answer.final)}"
    line = f"Rezeption ({timing}): {answer.text}"
    if answer.transfer_number:
        line += "  [weiterverbunden mit dem Salon]"
    elif answer.end_call:
        line += "  [aufgelegt]"
    return line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _own_server(settings: Settings) -> Iterator[str]:
    """Our server for this one call, in a thread on a free loopback port (same database)."""
    from rezeption.app import create_app  # the server only when there is none to call

    port = _free_port()
    quiet = settings.model_copy(update={"log_level": "WARNING"})  # the transcript is the output
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = uvicorn.Config(
        create_app(quiet), host="127.0.0.1", port=port, log_level="warning", lifespan="on", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise fail("rezeption: could not start a server for the call")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _hold_call(
    base: str, key: str, where: dict[str, str], caller: str | None, lines: list[str] | None
) -> bool:
    """The call itself; True when the receptionist ended it (goodbye or transfer)."""
    from rezeption.emulators.retell.caller import CallRefused, RetellPhone  # Retell's side, only here

    clock = load_settings().clock()
    phone = RetellPhone(base, key, now_ms=lambda: int(clock.now().timestamp() * 1000))
    call_id = f"call_terminal_{secrets.token_hex(6)}"
    try:
        call = await phone.call(call_id, from_number=caller, **where)
    except CallRefused as error:
        raise fail(f"rezeption: the call was not taken: {error}") from error
    typer.echo(f"Rezeption: {call.greeting}")
    try:
        async for line in _utterances(lines):
            if lines is not None:
                typer.echo(f"Anrufer: {line}")
            answer = await call.say(line)
            typer.echo(spoken(answer))
            if call.ended:
                break
    finally:
        await phone.hang_up(call, from_number=caller, **where)
    return call.ended


async def _utterances(lines: list[str] | None) -> AsyncIterator[str]:
    """The script's lines, or what the caller types; typing happens in a thread, so the socket
    keeps answering its keepalive pings while the caller thinks."""
    if lines is not None:
        for line in lines:
            yield line
        return
    while True:
        try:
            line = (await asyncio.to_thread(input, "Anrufer: ")).strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            return
        if line:
            yield line


def call(
    caller: Annotated[
        str | None,
        typer.Option("--from", help="The caller's number (caller ID: a known customer is greeted)."),
    ] = "+4915100000001",
    salon: Annotated[
        str | None, typer.Option("--salon", help="Salon slug (default: the only salon).")
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(help="Replay a call: one caller utterance per line, lines starting with # ignored."),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="The server (default: http://REZEPTION_HOST:REZEPTION_PORT).")
    ] = None,
) -> None:
    """Hold a phone call with the receptionist in the terminal (type German; Ctrl-D hangs up)."""
    settings = load_settings()
    lines = None
    if script is not None:
        if not script.is_file():
            raise fail(f"rezeption: no script at {script}")
        lines = read_script(script)
    _, where = run_command(lambda: salon_route(settings, salon, "--salon"))
    base = url or f"http://{settings.host}:{settings.port}"
    if not is_loopback(httpx.URL(base).host or ""):
        raise fail(f"rezeption call only rings a server on this machine, not {httpx.URL(base).host!r}")
    key = settings.retell_api_key.get_secret_value()
    if _answers(base):
        ended = asyncio.run(_hold_call(base, key, where, caller, lines))
    elif url is not None:
        raise fail(f"rezeption: no server answers at {base}: start it with `make run`")
    else:
        with _own_server(settings) as own:
            ended = asyncio.run(_hold_call(own, key, where, caller, lines))
    if lines is not None and not ended:
        raise fail("rezeption: the script ended before the receptionist ended the call", 1)
