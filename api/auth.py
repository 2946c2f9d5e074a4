"""Who is asking: bearer tokens from ``RECON_API_TOKENS`` (``name:role:token``, comma-separated) and what each
role may do.

Roles: ``read`` reads everything; ``operate`` also halts, resumes and triggers; ``bot=<bot name>`` reads and
triggers its own bot's accounts only. Tokens are compared in constant time, and neither a token nor a refused
value is ever logged, echoed or put in an error. The page keeps the token in an HttpOnly, SameSite=Strict cookie;
a POST made with that cookie must also carry the page's CSRF token (``csrf_token``), which is derived from the
token so no server state is needed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from reconciliation.errors import FixConfiguration
from reconciliation.names import is_name

READ = "read"
OPERATE = "operate"
BOT_ROLE_PREFIX = "bot="
MIN_TOKEN_LENGTH = 16
SESSION_COOKIE = "recon_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its token's name and role (``bot`` set for a bot's token)."""

    name: str
    role: str
    bot: str | None = None

    @property
    def may_operate(self) -> bool:
        """True when it may halt and resume accounts."""
        return self.role == OPERATE

    def may_read(self, bot: str) -> bool:
        """True when it may read ``bot``'s accounts."""
        return self.bot is None or self.bot == bot

    def may_trigger(self, bot: str) -> bool:
        """True when it may ask for a run of ``bot``'s accounts."""
        return self.role == OPERATE or (self.bot is not None and self.bot == bot)


@dataclass(frozen=True)
class Token:
    """A configured token: who it stands for, and its secret."""

    principal: Principal
    secret: bytes


def parse_tokens(configured: str | None) -> tuple[Token, ...]:
    """The tokens of ``RECON_API_TOKENS``; a bad entry is ``FixConfiguration`` naming it by position and name,
    never showing the secret."""
    if configured is None or not configured.strip():
        return ()
    tokens: list[Token] = []
    for position, entry in enumerate(configured.split(","), start=1):
        tokens.append(_parse_entry(entry.strip(), position))
    names = [t.principal.name for t in tokens]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FixConfiguration(f"invalid setting RECON_API_TOKENS: the name {duplicated[0]!r} is used twice")
    secrets = [t.secret for t in tokens]
    if len(set(secrets)) != len(secrets):
        raise FixConfiguration("invalid setting RECON_API_TOKENS: two entries share one token")
    return tuple(tokens)


def _parse_entry(entry: str, position: int) -> Token:
    where = f"invalid setting RECON_API_TOKENS: entry {position}"
    name, role, secret = [*entry.split(":", 2), "", ""][:3]
    if not is_name(name):
        raise FixConfiguration(f"{where}: give it as name:role:token with a name of lowercase letters and digits")
    where = f"{where} ({name})"
    bot: str | None = None
    if role.startswith(BOT_ROLE_PREFIX):
        bot = role.removeprefix(BOT_ROLE_PREFIX)
        if not is_name(bot):
            raise FixConfiguration(f"{where}: the role bot=<bot name> needs a valid bot name")
    elif role not in (READ, OPERATE):
        raise FixConfiguration(f"{where}: the role must be read, operate or bot=<bot name>")
    if len(secret) < MIN_TOKEN_LENGTH or any(c.isspace() for c in secret):
        raise FixConfiguration(
            f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters without spaces "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return Token(Principal(name, role if bot is None else f"{BOT_ROLE_PREFIX}{bot}", bot), secret.encode())


def authenticate(tokens: tuple[Token, ...], presented: str | None) -> Principal | None:
    """The principal whose token is ``presented``, or None. Every configured token is compared, in constant
    time, so the time taken says nothing about which one nearly matched."""
    if not presented:
        return None
    candidate = presented.encode()
    found: Principal | None = None
    for token in tokens:
        if hmac.compare_digest(token.secret, candidate):
            found = token.principal
    return found


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def csrf_token(session_token: str) -> str:
    """The CSRF token the page embeds for a session: derived from the session's token, so it cannot be guessed
    without it, and needs no server state."""
    return hmac.new(session_token.encode(), b"recon-page-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    """True when ``presented`` is the session's CSRF token (compared in constant time)."""
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


def is_loopback(host: str) -> bool:
    """True when binding ``host`` exposes nothing beyond this machine."""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
