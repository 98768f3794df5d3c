"""`rezeption admin create-user EMAIL --salon SLUG --role owner|staff`: the web admin's accounts.

The password comes from a prompt (asked twice, not echoed) or, with `--password-stdin`, from the
first line of standard input (for scripts). A taken e-mail, an unknown salon, a weak password: one
line, exit 2, nothing created.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from rezeption.cli.support import fail, load_settings, run_command, services_ready
from rezeption.store.admin import AdminUserError, create_user

admin_app = typer.Typer(help="The web admin's accounts.", no_args_is_help=True)


@admin_app.command("create-user")
def create_user_command(
    email: Annotated[str, typer.Argument(help="The login e-mail address.")],
    salon: Annotated[list[str], typer.Option(help="A salon (slug) the user may see; repeat for several.")],
    role: Annotated[
        str, typer.Option(help="owner (everything) or staff (appointments and calls).")
    ] = "staff",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a web-admin user for one or more salons."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Passwort", hide_input=True, confirmation_prompt="Passwort wiederholen")
    settings = load_settings()

    async def run() -> int:
        async with services_ready(settings) as services:
            try:
                return await create_user(
                    services.database, email, password, role=role, salons=salon, now=services.clock.now()
                )
            except AdminUserError as error:
                raise fail(f"rezeption: {error}; nothing created") from error

    user_id = run_command(run)
    typer.echo(
        f"Nutzer {email.strip().lower()} angelegt (Nr. {user_id}, {role}, {', '.join(salon)}): http://{settings.host}:{settings.port}/admin/"
    )
