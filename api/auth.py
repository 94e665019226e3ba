"""Bearer tokens mapped to a user and roles.

Tokens are never stored: the tokens file holds SHA-256 digests, and a presented token is hashed and
looked up by digest, then compared with hmac.compare_digest so the comparison takes constant time.
USM_ADMIN_TOKEN, when set, is a token with every role for the user `admin`.

Tokens file (TOML), one table per token, written by `usm token create`:

    [[token]]
    user = "alice"
    roles = ["service-desk"]
    sha256 = "<hex digest of the token>"
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from usm_engine.engine.projections import lane_role

BUILT_IN_ROLES = frozenset({"admin", "designer", "system", "auditor"})
# Roles that see every task; anyone else sees the tasks of the lanes they hold.
SEES_ALL_TASKS = frozenset({"admin", "system", "auditor"})


@dataclass(frozen=True)
class Principal:
    user: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return "admin" in self.roles or any(role in self.roles for role in roles)

    @property
    def lane_roles(self) -> frozenset[str]:
        return self.roles - BUILT_IN_ROLES

    def may_complete(self, lane: str | None) -> bool:
        return self.has("system") or (lane is not None and lane_role(lane) in self.roles)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRegistry:
    def __init__(self, admin_token: str | None = None, tokens_file: str | None = None):
        self._by_digest: dict[str, Principal] = {}
        if tokens_file:
            self._load(Path(tokens_file))
        if admin_token:
            self._by_digest[token_digest(admin_token)] = Principal("admin", frozenset(BUILT_IN_ROLES))

    def _load(self, path: Path) -> None:
        try:
            entries = tomllib.loads(path.read_text()).get("token", [])
        except FileNotFoundError:
            raise SystemExit(f"USM_TOKENS_FILE points at {path}, which does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SystemExit(f"the tokens file {path} is not valid TOML: {exc}") from None
        for number, entry in enumerate(entries, start=1):
            digest, user, roles = entry.get("sha256"), entry.get("user"), entry.get("roles", [])
            if not (isinstance(digest, str) and len(digest) == 64 and isinstance(user, str) and user
                    and isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
                raise SystemExit(f"token {number} in {path} needs user (string), roles (list of strings) "
                                 "and sha256 (64 hex characters)")
            self._by_digest[digest.lower()] = Principal(user, frozenset(roles))

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        found = self.find(token.strip())
        return found[1] if found else None

    def find(self, token: str) -> tuple[str, Principal] | None:
        """The digest and principal of a token (the sign-in form sends the token itself, not a header)."""
        digest = token_digest(token)
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return known, principal
        return None

    def entries(self) -> dict[str, Principal]:
        """digest -> principal of every known token (api/sessions.py refers to tokens by them)."""
        return dict(self._by_digest)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_entry(user: str, roles: list[str], token: str) -> str:
    role_list = ", ".join(f'"{role}"' for role in roles)
    return f'\n[[token]]\nuser = "{user}"\nroles = [{role_list}]\nsha256 = "{token_digest(token)}"\n'
