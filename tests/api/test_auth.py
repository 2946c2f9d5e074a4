"""Tokens from ``RECON_API_TOKENS``: parsed strictly, refused without showing the secret, matched in constant
time; roles decide who reads and who operates."""

from __future__ import annotations

import pytest

from api.auth import Principal, authenticate, bearer_of, csrf_matches, csrf_token, is_loopback, parse_tokens
from reconciliation.errors import FixConfiguration

SECRET = "s3cret-token-0123456789"


def test_tokens_parse_into_principals_by_role() -> None:
    tokens = parse_tokens(f"alice:operate:{SECRET}a, grafana:read:{SECRET}b,lx:bot=lxalgo:{SECRET}c")

    assert [t.principal for t in tokens] == [
        Principal("alice", "operate"),
        Principal("grafana", "read"),
        Principal("lx", "bot=lxalgo", "lxalgo"),
    ]


def test_no_tokens_configured_is_an_empty_set() -> None:
    assert parse_tokens(None) == () and parse_tokens("  ") == ()


@pytest.mark.parametrize(
    ("configured", "says"),
    [
        (f"Alice:read:{SECRET}", "entry 1: give it as name:role:token"),
        (f"alice:admin:{SECRET}", "entry 1 (alice): the role must be read, operate or bot=<bot name>"),
        (f"alice:bot=:{SECRET}", "entry 1 (alice): the role bot=<bot name> needs a valid bot name"),
        ("alice:read:short", "entry 1 (alice): the token must be at least 16 characters"),
        (f"alice:read:{SECRET},alice:operate:{SECRET}x", "the name 'alice' is used twice"),
        (f"alice:read:{SECRET},bob:operate:{SECRET}", "two entries share one token"),
        (f"alice:read:{SECRET},,", "entry 2: give it as name:role:token"),
    ],
)
def test_a_bad_entry_names_itself_and_never_shows_a_secret(configured: str, says: str) -> None:
    with pytest.raises(FixConfiguration) as refused:
        parse_tokens(configured)

    assert says in str(refused.value)
    assert SECRET not in str(refused.value) and "short" not in str(refused.value).replace("shortly", "")


def test_authenticate_finds_the_principal_of_a_token_and_nobody_for_others() -> None:
    tokens = parse_tokens(f"alice:operate:{SECRET}a,grafana:read:{SECRET}b")

    assert authenticate(tokens, f"{SECRET}b") == Principal("grafana", "read")
    assert authenticate(tokens, SECRET) is None  # a prefix of a token is not the token
    assert authenticate(tokens, f"{SECRET}a ") is None
    assert authenticate(tokens, None) is None and authenticate((), SECRET) is None


@pytest.mark.parametrize(
    ("principal", "reads_lxalgo", "reads_momentum", "triggers_lxalgo", "operates"),
    [
        (Principal("alice", "operate"), True, True, True, True),
        (Principal("grafana", "read"), True, True, False, False),
        (Principal("lx", "bot=lxalgo", "lxalgo"), True, False, True, False),
    ],
)
def test_roles_decide_what_a_caller_may_do(
    principal: Principal, reads_lxalgo: bool, reads_momentum: bool, triggers_lxalgo: bool, operates: bool
) -> None:
    assert principal.may_read("lxalgo") is reads_lxalgo
    assert principal.may_read("momentum") is reads_momentum
    assert principal.may_trigger("lxalgo") is triggers_lxalgo
    assert principal.may_trigger("momentum") is operates
    assert principal.may_operate is operates


def test_bearer_headers_are_read_case_insensitively_and_nothing_else_is_a_token() -> None:
    assert bearer_of(f"Bearer {SECRET}") == SECRET and bearer_of(f"bearer {SECRET}") == SECRET
    assert bearer_of(f"Basic {SECRET}") is None and bearer_of("Bearer ") is None and bearer_of(None) is None


def test_the_csrf_token_belongs_to_its_session_only() -> None:
    assert csrf_matches(SECRET, csrf_token(SECRET))
    assert not csrf_matches(f"{SECRET}x", csrf_token(SECRET))
    assert not csrf_matches(SECRET, None) and not csrf_matches(SECRET, "")
    assert SECRET not in csrf_token(SECRET)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("0.0.0.0", False), ("192.168.1.5", False), ("::", False)])  # fmt: skip
def test_only_loopback_addresses_count_as_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
