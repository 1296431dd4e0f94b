"""Session tokens of the edge's local API and pages (edge/auth.py `Sessions`): who they name, when they
stop working, and that a wall clock stepped back signs nobody out."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib

from edge.auth import Role, Sessions, SignedIn, check_password

TTL = 12 * 3600


class Clock:
    """The wall clock the sessions read, moved by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_a_token_names_its_user_and_role() -> None:
    sessions = Sessions()
    assert sessions.verify(sessions.issue("olga", Role.SUPERVISOR)) == SignedIn("olga", Role.SUPERVISOR)


def test_a_token_expires_after_its_time_to_live() -> None:
    clock = Clock()
    sessions = Sessions(ttl_s=TTL, clock=clock)
    token = sessions.issue("olga", Role.OPERATOR)
    clock.offset = TTL - 60
    assert sessions.verify(token) is not None
    clock.offset = TTL + 60
    assert sessions.verify(token) is None


def test_a_wall_clock_stepped_back_signs_nobody_out() -> None:
    """An NTP correction at boot or a fast real-time clock can step the time back: a token issued
    "in the future" is still this agent's own (outside attack on issue 12: itsdangerous' max_age
    refused any negative age, so a 2 s step back signed every operator out)."""
    clock = Clock()
    sessions = Sessions(ttl_s=TTL, clock=clock)
    token = sessions.issue("olga", Role.OPERATOR)
    for back in (2, 3600):
        clock.offset = -back
        assert sessions.verify(token) == SignedIn("olga", Role.OPERATOR)
    clock.offset = TTL + 60  # and it still ends when its time is up
    assert sessions.verify(token) is None


def test_a_tampered_token_or_one_from_another_run_is_refused() -> None:
    sessions = Sessions()
    token = sessions.issue("olga", Role.OPERATOR)
    payload, _, signature = token.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert sessions.verify(forged) is None
    assert Sessions().verify(token) is None  # a restarted agent has another key
    assert sessions.verify("not a token") is None


def test_a_revoked_token_stays_refused_and_revoking_twice_says_so() -> None:
    sessions = Sessions()
    token, other = sessions.issue("olga", Role.OPERATOR), sessions.issue("olga", Role.OPERATOR)
    assert sessions.revoke(token) is True
    assert sessions.verify(token) is None
    assert sessions.revoke(token) is False
    assert sessions.verify(other) is not None  # logging one session out leaves the others


def passwd(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    """`bondgate edge passwd <args>`, the password on standard input (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "bondgate.cli", "edge", "passwd", *args],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_passwd_prints_an_entry_the_config_reads_back_whatever_the_name() -> None:
    """`bondgate edge passwd` writes TOML through a TOML writer (a name with a quote stays one string)
    and takes only a role that exists."""
    made = passwd("--name", 'o"lga', "--role", "supervisor", password='se"cret')
    assert made.returncode == 0, made.stderr
    [user] = tomllib.loads(made.stdout)["api"]["users"]
    assert (user["name"], user["role"]) == ('o"lga', "supervisor")
    assert check_password('se"cret', user["password_hash"])
    refused = passwd("--name", "x", "--role", "boss", password="secret")
    assert refused.returncode != 0 and "boss" in refused.stderr
