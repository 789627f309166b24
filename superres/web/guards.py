"""What a server that may sit on a desktop for days needs before any route runs (ASGI middleware).

Each check answers with one JSON line ``{"error": …}`` and a status, in this order:

* **Host allow-list → 421.** A web page on another site can make a browser talk to 127.0.0.1 by
  pointing its own DNS name there (DNS rebinding); the browser then sends *that* name in ``Host``.
  Only localhost, 127.0.0.1, [::1] and the name the server was bound to are answered, on the
  server's own port.
* **Foreign Origin → 403.** Browsers send ``Origin`` with every cross-site POST/DELETE (and every
  cross-origin fetch). A request whose Origin is not this server's own is refused, whatever its
  method; requests without Origin (curl, scripts) pass.
* **Token → 401** (only when the server has one, as it must when bound off loopback):
  ``Authorization: Bearer TOKEN``, or the cookie that opening ``/?token=TOKEN`` once sets.
* **Upload limit → 413**, while streaming: a ``Content-Length`` over the limit is refused before
  the body is read, and a body that grows past it (chunked, or a lying length) is cut off at the
  chunk that crosses it: nothing past the limit is read or buffered.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
TOKEN_COOKIE = "superres_token"
# Sent with every answer: no sniffing, no framing, and a page that loads nothing from elsewhere.
_CSP = (
    b"default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", _CSP),
]


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_NAMES or host.startswith("127.")


def allowed_hosts(bind_host: str) -> frozenset[str]:
    """The names a request may carry in ``Host``: loopback's, the bound one, and — when bound to all
    interfaces — this machine's name and addresses."""
    names = set(LOOPBACK_NAMES)
    host = bind_host.strip("[]").lower()
    if host not in WILDCARDS:
        names.add(host)
        return frozenset(names)
    hostname = socket.gethostname()
    names |= {hostname.lower(), socket.getfqdn().lower()}
    try:
        names |= {info[4][0].lower() for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        pass
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    hosts: frozenset[str]
    token: str | None
    max_upload_bytes: int


class UploadTooLarge(Exception):
    """Raised from ``receive`` when a request body grows past the limit."""


def _name_and_port(authority: str, default_port: int) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(f"//{authority}")
        return parts.hostname, parts.port or default_port
    except ValueError:  # a malformed port or bracket
        return None, None


def host_allowed(host: str | None, policy: Policy, server_port: int | None) -> bool:
    if not host:
        return False
    name, port = _name_and_port(host, 80)
    return name in policy.hosts and (server_port is None or port == server_port)


def origin_allowed(origin: str, policy: Policy, server_port: int | None) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        return False  # "null" (sandboxed frames, file://) and anything odd
    name, port = _name_and_port(parts.netloc, 443 if parts.scheme == "https" else 80)
    return name in policy.hosts and (server_port is None or port == server_port)


def _token_of(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == TOKEN_COOKIE:
            return value
    return None


def _same(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


class Guard:
    """Wraps the app: refuses what the module doc lists, and adds :data:`SECURITY_HEADERS`."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, _with_headers(send, {"started": False}))
            return
        limit = self.policy.max_upload_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLarge
            return message

        status = {"started": False}
        try:
            await self.app(scope, limited_receive, _with_headers(send, status))
        except UploadTooLarge:
            if status["started"]:
                raise
            await self._too_large()(scope, receive, _with_headers(send, status))

    def _refusal(self, scope: Scope) -> Response | None:
        policy = self.policy
        headers = Headers(scope=scope)
        server_port = (scope.get("server") or (None, None))[1]
        if not host_allowed(headers.get("host"), policy, server_port):
            return _error(421, "this server answers to localhost only (the Host header names another host)")
        origin = headers.get("origin")
        if origin is not None and not origin_allowed(origin, policy, server_port):
            return _error(403, "cross-origin requests are refused (the Origin header names another site)")
        if policy.token is not None and not _same(_token_of(headers), policy.token):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if scope["method"] == "GET" and _same((query.get("token") or [None])[0], policy.token):
                # the link printed by `superres serve`: keep the token in a cookie, drop it from the URL
                redirect = RedirectResponse(scope.get("path", "/"), status_code=303)
                redirect.set_cookie(TOKEN_COOKIE, policy.token, httponly=True, samesite="strict")
                return redirect
            return _error(
                401,
                "this server needs its token: open the URL superres serve printed, or send "
                "'Authorization: Bearer TOKEN'",
            )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > policy.max_upload_bytes:
            return self._too_large()
        return None

    def _too_large(self) -> Response:
        megabytes = self.policy.max_upload_bytes / 2**20
        return _error(413, f"the upload is over the limit of {megabytes:.3g} MB (superres serve --max-upload-mb)")


def _error(status: int, message: str) -> Response:
    # the connection may hold an unread body: close it rather than read what was refused
    return JSONResponse({"error": message}, status_code=status, headers={"connection": "close"})


def _with_headers(send: Send, status: dict[str, bool]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            status["started"] = True
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return wrapped
