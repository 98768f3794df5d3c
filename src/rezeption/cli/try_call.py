"""`rezeption try FUNCTION key=value ...`: one function call by hand, signed as Retell signs it,
against a running server (`make run`), so anyone can hear what the receptionist would answer
without a phone or a Retell account.

The body is the envelope Retell posts (`name`, `call`, `args`), signed with this installation's
Retell API key; the call is routed to the salon by its first phone number (or agent id). Only for
loopback servers: the key never leaves the machine.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from rezeption.cli.support import fail, load_settings, run_command, salon_route
from rezeption.retell.signature import sign
from rezeption.retell.tools import TOOLS
from rezeption.settings import is_loopback


def try_function(
    function: Annotated[str, typer.Argument(help=f"One of: {', '.join(TOOLS)}.")],
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help='The arguments as key=value, e.g. datum=morgen "uhrzeit=10 Uhr".'),
    ] = None,
    call_id: Annotated[
        str | None,
        typer.Option(help="The call it belongs to (memory is kept per call; default: one per salon)."),
    ] = None,
    caller: Annotated[
        str, typer.Option(help="The caller's number, as Retell reports it.")
    ] = "+4915100000001",
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Salon slug (default: the only salon).")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="The server (default: http://REZEPTION_HOST:REZEPTION_PORT).")
    ] = None,
) -> None:
    """Call one of the agent's functions on the running server and print the reply."""
    args: dict[str, Any] = {}
    for item in arguments or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"arguments are key=value, got {item!r}")
        args[key] = value
    settings = load_settings()
    base = url or f"http://{settings.host}:{settings.port}"
    host = httpx.URL(base).host
    if not is_loopback(host):
        raise fail(f"rezeption try only calls a server on this machine, not {host!r}")

    slug, where = run_command(lambda: salon_route(settings, tenant))
    call = {"call_id": call_id or f"call_try_{slug}", "from_number": caller, **where}
    envelope = {"name": function, "call": call, "args": args}
    body = json.dumps(envelope, ensure_ascii=False).encode()
    signature = sign(
        body, settings.retell_api_key.get_secret_value(), int(settings.clock().now().timestamp() * 1000)
    )
    try:
        response = httpx.post(
            f"{base}/retell/functions/{function}",
            content=body,
            headers={"Content-Type": "application/json", "X-Retell-Signature": signature},
            timeout=10,
        )
    except httpx.HTTPError as error:
        raise fail(
            f"rezeption: no server answers at {base} ({type(error).__name__}): start it with `make run`"
        ) from error
    if response.status_code != 200:
        raise fail(f"rezeption: the server answered {response.status_code}: {response.text[:300]}")
    reply = response.json()
    typer.echo(reply.get("message", ""))
    typer.echo(json.dumps(reply, ensure_ascii=False, indent=2))
    if reply.get("ok") is False:  # a refusal (the sentence above says why), as `availability` does
        raise typer.Exit(1)
