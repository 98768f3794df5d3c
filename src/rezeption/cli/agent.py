"""`rezeption agent show|check`: the salon's Retell agent as its definition renders it (exactly the
bodies Retell's API receives) and the check that refuses what broke the old agent."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from rezeption.agent.check import problems
from rezeption.agent.definition import AgentFileError, Definition, agent_dir, render
from rezeption.cli.support import EXIT_REFUSED, fail, load_settings
from rezeption.store.salon_file import SalonFile, SalonFileError, read_salon

if TYPE_CHECKING:  # retell-sdk is the `agent` extra: serving does not need it
    from rezeption.agent.publish import AgentPublisher

T = TypeVar("T")

agent_app = typer.Typer(
    help="The salon's Retell agent as code: show, check, diff, publish, rollback, versions.",
    no_args_is_help=True,
)
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


def _publisher(salon_path: Path, base_url: str | None) -> tuple[AgentPublisher, Definition, SalonFile, str]:
    try:
        from retell import Retell

        from rezeption.agent.publish import AgentPublisher, AgentPublishError
    except ImportError as error:
        raise fail("rezeption: the agent commands need retell-sdk: pip install -e '.[agent]'") from error
    definition, environment = _definition(salon_path, base_url)
    salon = read_salon(salon_path)
    settings = load_settings()
    client = Retell(
        api_key=settings.retell_api_key.get_secret_value(),
        base_url=settings.retell_api_url,
        timeout=20.0,
        max_retries=1,
    )
    try:
        publisher = AgentPublisher(
            client, definition, salon, definition.agent["webhook_url"].rsplit("/retell/", 1)[0]
        )
    except AgentPublishError as error:
        raise fail(f"rezeption: {error}") from error
    return publisher, definition, salon, environment


def _run(action: Callable[[], T]) -> T:
    from rezeption.agent.publish import AgentPublishError, PublishIncomplete

    try:
        return action()
    except PublishIncomplete as error:
        raise fail(f"rezeption: {error}", EXIT_REFUSED) from error
    except AgentPublishError as error:
        raise fail(f"rezeption: {error}") from error


def _title() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "rezeption"
    return f"git {done.stdout.strip()}" if done.returncode == 0 and done.stdout.strip() else "rezeption"


@agent_app.command("versions")
def versions(salon: SalonOption = Path("salons/friseur1.yaml"), base_url: BaseUrl = None) -> None:
    """The agent's versions at Retell, newest first, and which one each phone number answers with."""
    publisher, *_ = _publisher(salon, base_url)
    for version in _run(publisher.versions):
        state = "veröffentlicht" if version.published else "Entwurf"
        live = f"  live auf {', '.join(version.pinned_on)}" if version.pinned_on else ""
        console.print(f"{version.number:>4}  {state:<15} {version.title or ''}{live}")


@agent_app.command("diff")
def diff(salon: SalonOption = Path("salons/friseur1.yaml"), base_url: BaseUrl = None) -> None:
    """What `agent publish` would change against what is live (exit 1 when something would)."""
    publisher, *_ = _publisher(salon, base_url)
    changes = _run(publisher.diff)
    for change in changes:
        typer.echo(change)
    if not changes:
        console.print("live agent matches the definition")
        return
    raise typer.Exit(EXIT_REFUSED)


@agent_app.command("publish")
def publish(salon: SalonOption = Path("salons/friseur1.yaml"), base_url: BaseUrl = None) -> None:
    """Check, update the drafts, publish a version titled with the git commit, pin it on the salon's
    numbers with call_inbound's URL. Stopped in the middle: says what was done; run it again."""
    publisher, definition, salon_file, environment = _publisher(salon, base_url)
    found = problems(definition, salon_file, environment=environment)
    if found:
        for problem in found:
            typer.echo(f"{salon}: {problem}", err=True)
        raise fail("rezeption: not published: the definition does not pass `agent check`")
    report = _run(lambda: publisher.publish(_title()))
    for done in report.steps:
        console.print(f"  {done}")
    console.print(f"version {report.version} live on {', '.join(salon_file.phone_numbers)}")


@agent_app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="A published version (see `agent versions`).")],
    salon: SalonOption = Path("salons/friseur1.yaml"),
    base_url: BaseUrl = None,
) -> None:
    """Pin an earlier published version on the salon's numbers."""
    publisher, *_ = _publisher(salon, base_url)
    numbers = _run(lambda: publisher.rollback(version))
    console.print(f"version {version} live on {', '.join(numbers)}")
