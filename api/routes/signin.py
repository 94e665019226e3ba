"""Signing in and out in a browser: /login is a form where a person pastes a token, which sets the read-only
session cookie of api/sessions.py; /logout clears it. The pages run no script at all."""
from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from ..contract import operation, query_param
from ..sessions import clear_cookie, safe_next, sessions, set_cookie, signed_in

bp = Blueprint("signin", __name__, template_folder="../templates")

# As strict as the front page's, but the form may post to this server (form-action 'self').
LOGIN_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                "base-uri 'none'; form-action 'self'")
REFUSED = ("That token was not accepted. Paste the whole token exactly as `usm token create` printed it, or ask "
           "the operator of this server for a new one.")


CROSS_SITE = ("This sign-in form was sent from another site. Open this server's own sign-in page and sign in "
              "there.")


def _cross_site() -> bool:
    """Whether a browser sent this form from another site. SameSite=Strict keeps the cookie from being
    used by other sites, but not another site from posting its own token here and signing the victim in
    as someone else (login CSRF). Browsers say where a form came from; clients without those headers
    (curl) are not browsers and cannot be tricked this way."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is not None and origin != request.host_url.rstrip("/")


def _page(status: int, target: str, problem: str | None = None) -> Response:
    principal = signed_in()
    html = render_template("login.html", next=target, problem=problem,
                           user=principal.user if principal else None, hours=sessions().max_age / 3600)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = LOGIN_POLICY
    return response


@bp.get("/login")
@operation("The sign-in page for people in a browser (HTML): paste a token to read this server's pages and "
           "GET API calls with its roles", roles="anyone", tag="meta", public=True,
           query=[query_param("next", {"type": "string"}, "the path on this server to go to after signing in")],
           responses={200: ""}, response_content={200: "text/html"})
def login_page() -> Response:
    return _page(200, safe_next(request.args.get("next")))


@bp.post("/login")
@operation("Sign in a browser: checks the token and sets a read-only session cookie (HttpOnly, SameSite=Strict), "
           "then redirects (303) to `next`; a wrong token gets the page again with 401", roles="anyone",
           tag="meta", public=True, request="SignIn", request_content="application/x-www-form-urlencoded",
           responses={303: "", 401: "", 403: ""}, response_content={401: "text/html", 403: "text/html"})
def sign_in() -> Response:
    target = safe_next(request.form.get("next"))
    if _cross_site():
        return _page(403, target, CROSS_SITE)
    signed = sessions().sign_in(request.form.get("token", ""))
    if signed is None:
        return _page(401, target, REFUSED)
    response = redirect(target, 303)
    set_cookie(response, signed[1])
    return response


@bp.post("/logout")
@operation("Sign a browser out: clears the session cookie and redirects (303) to /login", roles="anyone",
           tag="meta", public=True, responses={303: "", 403: ""}, response_content={403: "text/html"})
def sign_out() -> Response:
    if _cross_site():  # another site may not sign a person out either
        return _page(403, "/", CROSS_SITE)
    response = redirect(url_for("signin.login_page"), 303)
    clear_cookie(response)
    return response
