"""The local web server: one page, three JSON endpoints, and guards against other origins.

    GET  /            the page (the session token is in a <meta> tag)
    GET  /api/state   what to show: the sentence, its neighbours, the suggestion, progress
    POST /api/label   {"id": "003-04", "label": "supports" | "doubts" | "neutral" | "skip"}
    POST /api/undo    {}

Only the page may use the API. Every request must name this server in its Host header (a
DNS-rebinding page names its own host); every /api request must carry the per-session
random token in `X-Stance-Token` (a page of another origin cannot read it); a POST must be
`application/json` (which no HTML form can send) and, when the browser says where it comes
from (`Origin`, `Sec-Fetch-Site`), come from this origin. No CORS header is ever sent, so
cross-origin scripts can neither read answers nor pass the preflight a custom header needs.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request

from .guide import guide_html
from .session import AnnotationSession, SessionError

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Stance-Token"
MAX_BODY = 16 * 1024  # a label request is well under 200 bytes
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values that name this server: host:port, and the loopback names if local."""
    literal = f"[{host}]" if ":" in host else host
    hosts = {f"{literal}:{port}".lower()}
    if host == "localhost" or _is_loopback(host):
        hosts |= {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:  # werkzeug drops the default port from request.host
        hosts |= {h.rsplit(":", 1)[0] for h in hosts}
    return hosts


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(token: str, hosts: set[str]) -> tuple[int, str] | None:
    """Why the current request is refused (status, reason), or None to let it through."""
    if request.host.lower() not in hosts:
        return 403, "unexpected Host header"
    if not request.path.startswith("/api/"):
        return None
    if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
        return 403, "missing or wrong session token"
    if request.method != "POST":
        return None
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
        return 403, "foreign Origin"
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return 403, "cross-site request"
    if request.mimetype != "application/json":
        return 415, "requests must be application/json"
    return None


def page_response(page: str, token: str) -> Response:
    """The page with its token, and a policy that lets only its own inline code run."""
    nonce = secrets.token_urlsafe(16)
    html = page.replace("{{TOKEN}}", token).replace("{{NONCE}}", nonce)
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return resp


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise SessionError("the body must be a JSON object", 400)
    return body


def create_app(
    session: AnnotationSession, token: str | None = None, hosts: set[str] | None = None
) -> Flask:
    """The Flask app. `hosts`: accepted Host headers (`app.config["STANCE_HOSTS"]`, settable
    once the port is known); `token`: the session token (random by default)."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # labels in LABELS order, as shown
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["STANCE_TOKEN"] = token or secrets.token_urlsafe(32)
    app.config["STANCE_HOSTS"] = set(hosts if hosts is not None else {"localhost"})
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    page = page.replace("{{GUIDE}}", guide_html(session.store.claim))

    @app.before_request
    def guard() -> Any:
        refused = refusal(app.config["STANCE_TOKEN"], app.config["STANCE_HOSTS"])
        if refused is not None:
            logger.warning("refused %s %s: %s", request.method, request.path, refused[1])
            return jsonify(error=refused[1]), refused[0]
        return None

    @app.get("/")
    def index() -> Response:
        return page_response(page, app.config["STANCE_TOKEN"])

    @app.get("/api/state")
    def state() -> Response:
        return jsonify(session.state())

    @app.post("/api/label")
    def label() -> Response:
        body = _json_body()
        sentence_id, choice = body.get("id"), body.get("label")
        if not isinstance(sentence_id, str) or not isinstance(choice, str):
            raise SessionError("expected {'id': str, 'label': str}", 400)
        return jsonify(session.label(sentence_id, choice))

    @app.post("/api/undo")
    def undo() -> Response:
        _json_body()
        return jsonify(session.undo())

    @app.errorhandler(SessionError)
    def refused(e: SessionError) -> Any:
        return jsonify(error=str(e), state=session.state()), e.status

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Frame-Options"] = "DENY"  # keys typed into a framed page are not ours
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    return app


def make_server(app: Flask, host: str, port: int) -> Any:
    """A threaded WSGI server bound to host:port (0: any free port); the app learns its Host."""
    from werkzeug.serving import make_server as werkzeug_server

    server = werkzeug_server(host, port, app, threaded=True)
    app.config["STANCE_HOSTS"] = allowed_hosts(host, server.server_port)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    return server
