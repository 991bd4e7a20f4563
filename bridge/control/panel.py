"""The web panel: ``GET /`` (the page) and ``GET /static/{name}`` (its style, scripts, icon).

The files of ``bridge/control/static`` (shipped in the package: plain HTML, CSS and
JavaScript modules, no build step, nothing fetched from elsewhere at run time), read once
when the routes are made and served from memory.  Only the files named in :data:`ASSETS`
are served: any other name is 404, so no path can reach anything else on disk.  The page
holds no data: everything it shows comes from the API, with the token the page was opened
with (``/?token=...``).

Every answer forbids framing (``frame-ancestors 'none'``: another site cannot overlay the
panel's buttons to steer a click), allows scripts, styles, images and connections only from
the daemon itself, and sends no referrer (the page's address may hold the token).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

STATIC = "static"
PAGE = "index.html"
ASSETS = {
    "panel.css": "text/css",
    "panel.js": "text/javascript",  # the page's script; it imports the three below
    "api.js": "text/javascript",
    "queue.js": "text/javascript",
    "view.js": "text/javascript",
    "transcript.js": "text/javascript",  # listen mode: the transcript and the Listen button
    "icon.svg": "image/svg+xml",
    "overlay.js": "text/javascript",  # the overlay page's (bridge/control/overlay.py)
    "overlay.css": "text/css",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return (resources.files("bridge.control") / STATIC / name).read_bytes()


def routes() -> list[web.RouteDef]:
    """``GET /`` and ``GET /static/{name}`` (HEAD too), over the packaged files."""
    page = _read(PAGE)
    assets = {name: (_read(name), kind) for name, kind in ASSETS.items()}

    async def index(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=page, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
        )

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in assets:
            raise web.HTTPNotFound()
        body, kind = assets[name]
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=SECURITY_HEADERS)

    return [web.get("/", index), web.get(f"/{STATIC}/{{name}}", asset)]
