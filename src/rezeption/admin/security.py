"""Who is asking, and may they: the session cookie, CSRF on every form, the login rate limit, and
the salon a page is about (always one of the user's; anything else is "not found").

Cookie: a random token (its sha256 is the session's key in the database), HttpOnly, SameSite=Strict,
Secure outside development and test. CSRF: each session has a secret; every form carries it and
every POST is refused (403) without the right one. Login: five failures for an account or twenty
from an address within 15 minutes lock further tries for that window, with the same message whether
the account exists or not.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request

from rezeption.bootstrap import Services
from rezeption.store.admin import AdminUser, Session, session_for

COOKIE = "rezeption_admin"
WINDOW = timedelta(minutes=15)
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 20


class NotLoggedIn(Exception):
    """No valid session: the page sends the browser to the login."""


class Forbidden(Exception):
    """Logged in, but this is not for them (another role, a bad CSRF token)."""


class NotFound(Exception):
    """Nothing of theirs under this id (another salon's ids look exactly like missing ones)."""


@dataclass(frozen=True)
class Visitor:
    """A request's logged-in user, their session's CSRF secret, and the salon the page is about."""

    session: Session
    tenant_id: int

    @property
    def user(self) -> AdminUser:
        return self.session.user

    @property
    def salon(self) -> str:
        return self.user.salons[self.tenant_id]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def cookie_secure(services: Services) -> bool:
    return services.settings.environment not in ("development", "test")


async def visitor(request: Request, *, owner: bool = False) -> Visitor:
    """The logged-in user and their salon for this page (`?salon=SLUG` among theirs, else the first)."""
    services: Services = request.app.state.services
    token = request.cookies.get(COOKIE)
    session = await session_for(services.database, token, now=services.clock.now()) if token else None
    if session is None:
        raise NotLoggedIn
    if owner and not session.user.is_owner:
        raise Forbidden
    wanted = request.query_params.get("salon")
    salons = session.user.salons
    if wanted is not None:
        chosen = next((tid for tid, slug in salons.items() if slug == wanted), None)
        if chosen is None:
            raise NotFound
        return Visitor(session, chosen)
    if not salons:
        raise Forbidden
    return Visitor(session, next(iter(salons)))


def check_csrf(visitor: Visitor, given: str | None) -> None:
    """Refuse a form without this session's CSRF token."""
    if not given or not hmac.compare_digest(given.encode(), visitor.session.csrf.encode()):
        raise Forbidden
