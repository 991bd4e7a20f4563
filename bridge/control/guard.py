"""Who may use the control API: the guard every request passes before its route.

In this order, for every route (the extra ones other modules add too):

1. **Host** (DNS rebinding): the ``Host`` header must name a loopback address or name
   (127.0.0.0/8, ::1, ``localhost``), the address the server is bound to, or the address the
   connection arrived at; on an every-interface bind (``0.0.0.0``, ``::``) also this machine's
   name.  Any port.  Otherwise 403: a page served from ``evil.example`` that re-points its
   name at 127.0.0.1 still sends ``Host: evil.example``.  (A request with no ``Host`` at all,
   HTTP/1.0, passes: browsers always send one.)
2. **Token**, when one is configured: ``Authorization: Bearer <token>`` (the scheme in any
   case) or ``?token=``, compared in constant time.  A wrong token is 401 everywhere.  A
   missing one is 401 too, except on :data:`PUBLIC` paths (health probes, the panel's static
   page) and on the WebSocket (:data:`WEBSOCKET`), whose hub asks for the token in the first
   message: the guard records ``request[AUTHORIZED]`` (True/False) for it.
3. **Browsers** (:func:`foreign_page`): on every route that changes state (any method but
   GET/HEAD/OPTIONS, and the GETs of :data:`STATE_CHANGING_GETS`), a request that carries an
   ``Origin`` other than the server's own or one of ``control.allowed_origins``, or that a
   browser marks ``Sec-Fetch-Site: cross-site``/``same-site`` without such an origin, is
   refused with 403 — unless it carries the right token (a Stream Deck plugin runs in a web
   view and may send an Origin).  curl, Stream Deck's Website action, Companion and bots send
   neither header and pass.  text/plain bodies, forms and ``<img>`` GETs are exactly what a
   page of another origin can send without a CORS preflight: this is what stops them.
4. **CORS** stays off unless ``control.allowed_origins`` lists origins: only those get
   ``Access-Control-Allow-Origin`` and answered preflights (a preflight carries no token, so
   it is answered right after the Host check; a preflight from any other origin is 403).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

from bridge.config import ControlConfig, Secret
from bridge.control.problems import error_response

TOKEN_ENV = "HEYGEN_BRIDGE_TOKEN"
# GETs that change state (Stream Deck's Website action can only send GETs); matched against
# the route's path pattern.  Any other method changes state by definition.
STATE_CHANGING_GETS = frozenset(
    {"/v1/speak", "/v1/presets/{name}", "/v1/ws", "/v1/listen/start", "/v1/listen/stop"}
)
# The WebSocket: a missing token is not refused here; its hub asks for it in the first message.
WEBSOCKET = "/v1/ws"
# Needing no token: health probes, and the panel's page and static files (no secret in them;
# the page then sends the token from its own URL).  Everything else needs it when one is set.
PUBLIC = frozenset({"/healthz", "/readyz", "/"})
PUBLIC_PREFIXES = ("/static/",)
# What the guard found of the request's token (True: the right one, or none is configured);
# a typed key (aiohttp warns on plain string keys in a request's storage).
AUTHORIZED = web.RequestKey("authorized", bool)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CORS_MAX_AGE_S = 600
EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the API on this machine (127.0.0.0/8, ::1,
    localhost); anything else, including a hostname or "" (every interface), is not."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_ok(expected: Secret | None, given: str | None) -> bool:
    """Whether ``given`` is the configured token, in constant time; True when none is
    configured (the API is then open to whoever reaches it: loopback only)."""
    if expected is None:
        return True
    if not given:
        return False
    # surrogatepass: a lone surrogate (from a JSON message, or a header byte aiohttp could
    # not decode) is a wrong token, not a UnicodeEncodeError.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.reveal().encode("utf-8", "surrogatepass")
    )


def given_token(request: web.Request) -> str:
    """The token from ``Authorization: Bearer <token>`` (the scheme in any case, as RFC 7235
    allows), else from ``?token=``; another scheme's credentials count as a wrong token."""
    header = request.headers.get(hdrs.AUTHORIZATION, "").strip()
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        header = credentials.strip()
    return header or request.query.get("token", "")


def host_name(host_header: str) -> str:
    """The name or address of a ``Host`` header, without its port, lower case:
    ``[::1]:8765`` → ``::1``, ``LocalHost.:80`` → ``localhost``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def route_pattern(request: web.Request) -> str | None:
    """The matched route's path pattern (``/v1/presets/{name}``); None when none matched."""
    if request.match_info.http_exception is not None:
        return None
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def changes_state(request: web.Request) -> bool:
    """Whether the request may change anything: any method but GET/HEAD/OPTIONS, and the GETs
    (and HEADs) of :data:`STATE_CHANGING_GETS`."""
    if request.method not in SAFE_METHODS:
        return True
    return request.method != "OPTIONS" and route_pattern(request) in STATE_CHANGING_GETS


def is_public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_PREFIXES)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    detail: str


class Guard:
    """The checks of the module docstring, as one aiohttp middleware plus a response hook
    (CORS headers on every answer, refusals included)."""

    def __init__(self, cfg: ControlConfig, token: Secret | None) -> None:
        self._token = token
        self._allowed_origins = frozenset(o.lower().rstrip("/") for o in cfg.allowed_origins)
        self._hosts = {host_name(cfg.host), "localhost"} - {""}
        if cfg.host in EVERY_INTERFACE:
            # Bound to every interface: clients may use this machine's name as well as its
            # addresses (the connection's own address is checked per request).
            machine = socket.gethostname().lower()
            self._hosts |= {machine, f"{machine}.local"}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = self.check(request)
        if refused is not None:
            headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
            return error_response(refused.status, refused.detail, headers=headers)
        if self._is_preflight(request):
            return self._preflight(request)
        return await handler(request)

    def check(self, request: web.Request) -> Refusal | None:
        """Why the request may not pass (None: it may); sets ``request[AUTHORIZED]``."""
        host = request.headers.get(hdrs.HOST)
        if host is not None and not self._host_ok(request, host):
            return Refusal(
                403,
                f"Host: {host_name(host)[:100]!r} is not this server's address; use "
                "127.0.0.1, localhost or the address it listens on",
            )
        if self._is_preflight(request):  # browsers send no credentials with a preflight
            return None
        given = given_token(request)
        authorized = token_ok(self._token, given)
        request[AUTHORIZED] = authorized
        how = f"send {TOKEN_ENV}'s value as 'Authorization: Bearer <token>' or '?token=<token>'"
        if given and not authorized:
            return Refusal(401, f"token: wrong; {how}")
        vouched = self._token is not None and authorized  # the right token passes any Origin
        if not vouched and changes_state(request):
            foreign = self.foreign_page(request)
            if foreign is not None:
                return Refusal(403, foreign)
        if not authorized and not is_public(request.path) and route_pattern(request) != WEBSOCKET:
            return Refusal(401, f"token: missing; {how}")
        return None

    def foreign_page(self, request: web.Request) -> str | None:
        """Why a browser page of another origin sent this (None: it did not, or its origin is
        this server's own or listed in ``control.allowed_origins``)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None:
            if self._origin_ok(request, origin):
                return None
            return (
                f"Origin: {origin.strip()[:100]!r} is another site's page; list it in "
                "control.allowed_origins, or send the token"
            )
        site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
        if site in ("cross-site", "same-site"):
            return (
                f"Sec-Fetch-Site: {site}: a page of another site sent this; list its origin "
                "in control.allowed_origins, or send the token"
            )
        return None

    def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """CORS for the listed origins only (every other page gets no CORS header, so its
        scripts cannot read an answer); ``Vary: Origin`` so caches keep them apart."""
        origin = request.headers.get(hdrs.ORIGIN)
        if self._allowed_origins:
            response.headers.add(hdrs.VARY, "Origin")
        if origin is not None and self._listed(origin):
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = "Retry-After"

    # --- the pieces -----------------------------------------------------------------------

    def _host_ok(self, request: web.Request, header: str) -> bool:
        name = host_name(header)
        if name in self._hosts or is_loopback(name):
            return True
        # The address this connection arrived at (on an every-interface bind: the LAN address
        # a client typed).  An address, never a name, so no rebinding can produce it.
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return isinstance(sockname, tuple) and name == str(sockname[0]).lower()

    def _listed(self, origin: str) -> bool:
        return origin.strip().lower().rstrip("/") in self._allowed_origins

    def _origin_ok(self, request: web.Request, origin: str) -> bool:
        """Whether ``origin`` is this server's own (the scheme and the Host the request
        names) or a listed one.  ``null`` (a sandboxed frame, a file:// page) is neither."""
        if self._listed(origin):
            return True
        host = request.headers.get(hdrs.HOST, "").strip().lower()
        own = {f"http://{host}"}
        if host.endswith(":80"):
            own.add(f"http://{host[:-3]}")
        else:
            own.add(f"http://{host}:80")
        return bool(host) and origin.strip().lower().rstrip("/") in own

    def _is_preflight(self, request: web.Request) -> bool:
        return (
            request.method == "OPTIONS"
            and hdrs.ORIGIN in request.headers
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        )

    def _preflight(self, request: web.Request) -> web.StreamResponse:
        """A CORS preflight: answered for a listed origin on an existing path; refused (403,
        no CORS header: the browser then sends nothing) for any other origin."""
        origin = request.headers[hdrs.ORIGIN]
        if not self._listed(origin):
            return error_response(
                403,
                f"Origin: {origin.strip()[:100]!r} is not listed in control.allowed_origins",
            )
        if isinstance(request.match_info.http_exception, web.HTTPNotFound):
            raise request.match_info.http_exception
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "GET, POST, DELETE",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "Authorization, Content-Type",
                hdrs.ACCESS_CONTROL_MAX_AGE: str(CORS_MAX_AGE_S),
            },
        )
