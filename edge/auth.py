"""Operator and supervisor logins for the local API and pages.

- Passwords: scrypt hashes in edge.toml (`bondgate edge passwd`). A name that is no user is checked
  against a decoy hash made at start, so a wrong name costs the same scrypt work as a wrong password
  and the answer's timing does not say which names exist (bench/login_timing.py measures it).
- Roles (`Role`): an operator reads and types codes; a supervisor may do that and override.
- Sessions: short-lived bearer tokens signed with itsdangerous (HMAC-SHA256 over the claims and the
  time they were issued, compared in constant time), the same for the API (`Authorization: Bearer`)
  and the pages (the session cookie). The key is made at start, so a restart signs everyone out;
  logging out revokes the token itself, which is then refused everywhere until it would have expired.
- Failed logins (`LoginGuard`): counted per user name and per client address. After `free` failures
  a key is refused for a while, without its password being checked: 1 s after the next failure,
  doubling with each further one, up to 60 s for a name and 15 min for an address. A refusal is
  temporary by construction, and refusals do not extend it. A name's block does not apply at
  addresses the user has logged in from successfully since the agent started, so someone guessing
  a supervisor's password from elsewhere cannot keep the supervisor out at their own desk; a new
  address waits at most 60 s. A success clears the name's and the address's failures.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from itsdangerous import BadData, URLSafeTimedSerializer

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _parts(stored: str) -> tuple[bytes, bytes] | None:
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != "scrypt" or not salt or not digest:
        return None
    try:
        return base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_password_hash(stored: str) -> bool:
    """`stored` has the shape `hash_password` writes (what edge.toml's users must carry)."""
    parts = _parts(stored)
    return parts is not None and len(parts[0]) > 0 and len(parts[1]) == 32


def check_password(password: str, stored: str) -> bool:
    parts = _parts(stored)
    if parts is None:
        return False
    salt, digest = parts
    got = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return hmac.compare_digest(got, digest)


# --- roles and sessions --------------------------------------------------------------------------------


class Role(StrEnum):
    """What a user of the local API and pages may do; each role may do what the ones before it may."""

    OPERATOR = "operator"  # reads the stations, the queue and the status; types codes
    SUPERVISOR = "supervisor"  # …and overrides a manual station's decision

    def covers(self, needed: Role) -> bool:
        """This role may do what `needed` may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class SignedIn(NamedTuple):
    """Who a valid session token belongs to."""

    name: str
    role: Role


class Sessions:
    """Bearer tokens signed by itsdangerous: the claims (user, role, and an id by which a logged-out
    token stays refused until it expires) and the time of issue, under a key made at start.

    A token is refused when its signature does not match (tampered with, or from an earlier run of
    the agent), when `ttl_s` has passed since it was issued (by the wall clock, `clock`), and once it
    has been revoked. A wall clock stepped back (an NTP correction at boot) signs nobody out: a token
    issued "in the future" by this process's own key is its own, and it expires `ttl_s` after its
    issue time all the same."""

    SALT = "bondgate.edge.session"

    def __init__(self, ttl_s: int = 12 * 3600, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._serializer = URLSafeTimedSerializer(
            secrets.token_bytes(32), salt=self.SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._revoked: dict[str, float] = {}  # token id → when the token expires (epoch seconds)

    def issue(self, user: str, role: Role) -> str:
        return self._serializer.dumps({"u": user, "r": str(role), "id": secrets.token_urlsafe(12)})

    def _claims(self, token: str) -> tuple[SignedIn, str, float] | None:
        """The token's user, id and expiry (epoch seconds); None unless it is signed and current."""
        try:  # no max_age: itsdangerous also refuses a negative age, which a clock step back makes
            data, issued = self._serializer.loads(token, return_timestamp=True)
        except BadData:  # a bad signature, or a payload that is not ours
            return None
        expires = issued.timestamp() + self.ttl_s
        if self.clock() > expires:
            return None
        if not isinstance(data, dict):
            return None
        user, role, token_id = data.get("u"), data.get("r"), data.get("id")
        if not isinstance(user, str) or not isinstance(token_id, str) or role not in list(Role):
            return None
        return SignedIn(user, Role(role)), token_id, expires

    def verify(self, token: str) -> SignedIn | None:
        claims = self._claims(token)
        if claims is None or claims[1] in self._revoked:
            return None
        return claims[0]

    def revoke(self, token: str) -> bool:
        """Log `token` out for good; False if it was no valid token (nothing to do)."""
        claims = self._claims(token)
        if claims is None or claims[1] in self._revoked:
            return False
        now = self.clock()
        for token_id, expires in list(self._revoked.items()):  # forget the ones that expired anyway
            if expires < now:
                del self._revoked[token_id]
        self._revoked[claims[1]] = claims[2]
        return True


# --- failed logins ---------------------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


@dataclass
class LoginGuard:
    """Failed logins per user name and per client address, and for how long each is refused.

    Time is passed in (`clock`), so the tests move it instead of sleeping. Memory is bounded: at
    most `max_keys` names and addresses are remembered (the least recently failed go first), and a
    key without a failure for `forget_s` is forgotten."""

    free: int = 5  # failures allowed before any refusal
    first_s: float = 1.0  # the first refusal; each further failure doubles it…
    name_cap_s: float = 60.0  # …up to this for a user name (the real user may be waiting)
    address_cap_s: float = 900.0  # …and this for a client address
    forget_s: float = 3600.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _keys: OrderedDict[tuple[str, str], _Failures] = field(default_factory=OrderedDict)
    _known: dict[str, set[str]] = field(default_factory=dict)  # user → addresses with a success

    def retry_after(self, name: str, address: str) -> float:
        """Seconds until a login for `name` from `address` may be tried; 0: now."""
        now = self.clock()
        waits = [self._wait(("address", address), now)]
        if address not in self._known.get(name, ()):
            waits.append(self._wait(("name", name), now))
        return max(waits)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        if now - entry.last > self.forget_s and now >= entry.blocked_until:
            del self._keys[key]
            return 0.0
        return max(0.0, entry.blocked_until - now)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key, cap in ((("name", name), self.name_cap_s), (("address", address), self.address_cap_s)):
            entry = self._keys.pop(key, None) or _Failures()
            if now - entry.last > self.forget_s:
                entry = _Failures()
            entry.count += 1
            entry.last = now
            over = entry.count - self.free
            if over > 0:
                entry.blocked_until = now + min(cap, self.first_s * 2 ** min(over - 1, 30))
            self._keys[key] = entry  # most recent last
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        self._keys.pop(("name", name), None)
        self._keys.pop(("address", address), None)
        known = self._known.setdefault(name, set())
        if len(known) < 64:
            known.add(address)


# --- one login check, for the API and the pages ------------------------------------------------------------


class UserEntry(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def password_hash(self) -> str: ...


@dataclass(frozen=True)
class LoginResult:
    user: SignedIn | None = None  # who, when the password was right
    retry_after_s: float = 0.0  # > 0: refused unchecked, too many failures for the name or address

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0


class Logins:
    """Checks a name and password the same way for the API and the pages.

    Password checks run one at a time in a worker thread: scrypt takes tens of milliseconds of CPU,
    which must neither stall the event loop the stations decide on nor, under a flood of attempts,
    take both cores. The guard is asked again once a check's turn comes, so attempts sent all at
    once are counted one after the other, not all let through before the first failure is known."""

    def __init__(
        self,
        users: Mapping[str, UserEntry],
        *,
        guard: LoginGuard | None = None,
        verify: Callable[[str, str], bool] = check_password,
    ) -> None:
        self.users = dict(users)
        self.guard = guard or LoginGuard()
        self.verify = verify
        # what a name that is no user is checked against: the same scrypt work as a real one
        self._decoy = hash_password(secrets.token_urlsafe(16))
        self._one_at_a_time = asyncio.Lock()

    async def check(self, name: str, password: str, address: str) -> LoginResult:
        if (wait := self.guard.retry_after(name, address)) > 0:
            return LoginResult(retry_after_s=wait)
        async with self._one_at_a_time:
            if (wait := self.guard.retry_after(name, address)) > 0:
                return LoginResult(retry_after_s=wait)
            found = self.users.get(name)
            stored = found.password_hash if found is not None else self._decoy
            ok = await asyncio.to_thread(self.verify, password, stored)
        if found is None or not ok:
            self.guard.failed(name, address)
            return LoginResult()
        self.guard.succeeded(name, address)
        return LoginResult(user=SignedIn(found.name, found.role))
