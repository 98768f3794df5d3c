"""`rezeption agent show|check`: the salon's Retell agent as its definition renders it (exactly the
bodies Retell's API receives) and the check that refuses what broke the old agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rezeption.agent.check import problems
from rezeption.agent.definition import AgentFileError, Definition, agent_dir, render
from rezeption.cli.support import EXIT_REFUSED, fail, load_settings
from rezeption.store.salon_file import SalonFileError, read_salon

agent_app = typer.Typer(help="The salon's Retell agent as code: show, check.", no_args_is_help=True)
console = Console()

SalonOption = Annotated[Path, typer.Option("--salon", help="The salon file.")]
BaseUrl = Annotated[
    str | None, typer.Option(help="Where Retell reaches us (default: http://REZEPTION_HOST:REZEPTION_PORT).")
]


def _definition(salon_path: Path, base_url: str | None) -> tuple[Definition, str]:
    settings = load_settings()
    base = base_url or f"http://{settings.host}:{settings.port}"
    try:
        salon = read_salon(salon_path)
        return render(salon, agent_dir(Path.cwd(), salon), base), settings.environment
    except (SalonFileError, AgentFileError) as error:
        raise fail(f"rezeption: {error}") from error


@agent_app.command("show")
def show(
    salon: SalonOption = Path("salons/friseur1.yaml"),
    base_url: BaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the bodies as JSON.")] = False,
) -> None:
    """The Retell LLM and agent bodies for the salon, as Retell's API will receive them."""
    definition, _ = _definition(salon, base_url)
    if as_json:
        typer.echo(json.dumps(definition.as_json(), ensure_ascii=False, indent=2))
        return
    llm, agent = definition.llm, definition.agent
    console.print(
        f"[bold]{agent['agent_name']}[/bold] ({definition.source}), {agent['language']}, {agent['timezone']}"
    )
    console.print(f"Begrüßung: {llm['begin_message']}")
    for tool in llm["general_tools"]:
        line = tool.get("execution_message_description") or "-"
        console.print(f"  {tool['name']:<24} {tool.get('url', tool['type'])}  ({line})")
    for note in definition.notes:
        console.print(note)


@agent_app.command("check")
def check(
    salon: Annotated[
        list[Path] | None, typer.Option("--salon", help="Salon file(s); default: salons/*.yaml.")
    ] = None,
    base_url: BaseUrl = None,
) -> None:
    """Refuse, with the place and the reason, a definition that must not go live (exit 1)."""
    files = salon or sorted(Path("salons").glob("*.yaml"))
    failed = False
    for path in files:
        definition, environment = _definition(path, base_url)
        found = problems(definition, read_salon(path), environment=environment)
        if found:
            failed = True
            for problem in found:
                typer.echo(f"{path}: {problem}", err=True)
        else:
            console.print(f"{path}: ok ({definition.source})")
    if failed:
        raise typer.Exit(EXIT_REFUSED)
