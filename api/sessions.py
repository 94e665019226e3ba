"""Sign-in for people in a browser: a signed, expiring cookie that stands for a token, for reading only.

A browser cannot add an `Authorization` header to a page it opens, so /login takes a token once (pasted into
a form, checked by the token registry of api/auth.py) and sets the cookie `usm_session`. It holds the
token's user and roles and a reference to the token (an HMAC of the token's SHA-256 digest under the session
secret), never the token itself, signed with itsdangerous (HMAC-SHA256, with a timestamp). The timestamp is
checked here, on every request, against USM_SESSION_HOURS: a browser that keeps the cookie longer gains
nothing. The reference is looked up in the token registry of this process, and the principal found there
(its user and roles) is the one used, so a token removed from the tokens file ends its sessions when the
server next starts, whatever the secret.

The cookie only reads: api/http.py's `requires` accepts it on GET and HEAD alone. A cookie is sent by the
browser on its own, so a page of another site could otherwise make a signed-in browser change something;
every other method still needs the bearer header, and a bearer header, when sent, always wins.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, request, url_for
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from usm_engine.engine.settings import Settings

from .auth import Principal, TokenRegistry
from .problems import ApiProblem

COOKIE = "usm_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})
BEARER_NEEDED = "send a valid token as 'Authorization: Bearer <token>'"
COOKIE_CANNOT_CHANGE = ("a browser sign-in only lets you read; to change anything send the token as "
                        "'Authorization: Bearer <token>'")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def with_shared_secret(settings: Settings) -> Settings:
    """`settings` with a session secret. Without USM_SESSION_SECRET, `usm serve` calls this in gunicorn's
    master before it forks the workers, so that a cookie one worker signed verifies in all of them; the
    secret also goes into the environment, for a master that re-executes itself (USR2). A new one at each
    start, so a restart signs every browser out."""
    if settings.session_secret:
        return settings
    os.environ["USM_SESSION_SECRET"] = new_secret()
    return replace(settings, session_secret=os.environ["USM_SESSION_SECRET"])


class Sessions:
    """Issues and reads the cookie. `now` gives the time in seconds (the app's clock, so tests can move it)."""

    def __init__(self, secret: str, hours: float, tokens: TokenRegistry, now: Callable[[], float]):
        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(now())

        self.max_age = max(0, int(hours * 3600))
        self._key = secret.encode()
        self._tokens = tokens
        self._serializer = URLSafeTimedSerializer(secret, salt="usm-session", signer=_Signer,
                                                  signer_kwargs={"digest_method": hashlib.sha256})
        self._by_reference = {self._reference(digest): principal for digest, principal in tokens.entries().items()}

    def _reference(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()[:32]

    def sign_in(self, token: str) -> tuple[Principal, str] | None:
        """The principal of a valid token and the cookie value that stands for it; None for a wrong token."""
        found = self._tokens.find(token.strip()) if token and token.strip() else None
        if found is None:
            return None
        digest, principal = found
        value = self._serializer.dumps({"user": principal.user, "roles": sorted(principal.roles),
                                        "ref": self._reference(digest)})
        return principal, value

    def principal(self, value: str | None) -> Principal | None:
        """Who a cookie stands for, or None when it is missing, tampered with, expired or its token is gone."""
        if not value:
            return None
        try:
            payload = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one too
            return None
        if not isinstance(payload, dict):
            return None
        principal = self._by_reference.get(str(payload.get("ref")))
        if principal is None or principal.user != payload.get("user"):
            return None
        return principal


def sessions() -> Sessions:
    return current_app.extensions["usm_sessions"]


def signed_in() -> Principal | None:
    """Who this browser is signed in as (the cookie alone)."""
    return sessions().principal(request.cookies.get(COOKIE))


def current_principal() -> Principal | None:
    """Who the request comes from: the bearer header when sent (valid or not), else, for a read, the cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        return current_app.extensions["usm_tokens"].authenticate(header)
    if request.method not in SAFE_METHODS:
        return None
    return signed_in()


def refuse() -> Response:
    """No principal: a person's browser opening a page goes to /login; everyone else gets a 401 problem."""
    unauthorized = {"WWW-Authenticate": 'Bearer realm="usm"'}
    if "Authorization" not in request.headers:
        if request.method in SAFE_METHODS and prefers_html():
            return redirect(url_for("signin.login_page", next=request.full_path.rstrip("?")), 303)
        if request.method not in SAFE_METHODS and COOKIE in request.cookies:
            raise ApiProblem(401, "Unauthorized", COOKIE_CANNOT_CHANGE, headers=unauthorized)
    raise ApiProblem(401, "Unauthorized", BEARER_NEEDED, headers=unauthorized)


def prefers_html() -> bool:
    # A browser's Accept puts text/html first; curl's */* and API clients get JSON.
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def safe_next(target: str | None) -> str:
    """A path on this server to go to after signing in, or "/": never another site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def set_cookie(response: Response, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=sessions().max_age, path="/", secure=request.is_secure,
                        httponly=True, samesite="Strict")


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=request.is_secure, httponly=True, samesite="Strict")
