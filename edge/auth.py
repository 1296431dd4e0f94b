"""Operator and supervisor logins for the local API: scrypt password hashes in edge.toml, and
short-lived HMAC-signed bearer tokens (the key is made at start, so a restart signs everyone out)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time

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


class Sessions:
    def __init__(self, ttl_s: float = 12 * 3600) -> None:
        self._key = secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def issue(self, user: str, role: str) -> str:
        body = base64.urlsafe_b64encode(
            json.dumps({"u": user, "r": role, "exp": int(time.time() + self.ttl_s)}).encode()
        ).decode()
        sig = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{sig}"

    def verify(self, token: str) -> tuple[str, str] | None:
        body, _, sig = token.partition(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
        if not sig or not hmac.compare_digest(sig, expected):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body))
        except ValueError:
            return None
        if data.get("exp", 0) < time.time():
            return None
        return str(data["u"]), str(data["r"])
