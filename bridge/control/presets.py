"""Presets: named texts from the config (``presets:``), one press of a button each.

``GET /v1/presets`` lists them; ``POST /v1/presets/{name}`` or ``GET`` (Stream Deck's Website
action) speaks one with its mode and priority, answered like a speak request (202); a name
not in the config is a 404.  The request's body and query (but the guard's ``token``) are not
read: a preset takes no parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from bridge.config import PresetConfig
from bridge.control.queue import SpeechQueue
from bridge.control.routes import accepted
from bridge.errors import NotFound


class PresetRoutes:
    def __init__(self, *, queue: SpeechQueue, presets: Mapping[str, PresetConfig]) -> None:
        """``presets`` is read at every request (not copied): its owner may change it live."""
        self._queue = queue
        self._presets = presets

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/presets", self.list),
            web.post("/v1/presets/{name}", self.speak),
            # allow_head=False: a HEAD must not speak (aiohttp would run the GET's handler).
            web.get("/v1/presets/{name}", self.speak, allow_head=False),
        ]

    async def list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "presets": [
                    {"name": name, "text": p.text, "mode": p.mode, "priority": p.priority}
                    for name, p in self._presets.items()
                ]
            }
        )

    async def speak(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        preset = self._presets.get(name)
        if preset is None:  # GET /v1/presets lists the names there are
            raise NotFound("preset", name)
        items = self._queue.submit(
            preset.text, preset.mode, preset.priority, source=f"preset:{name}"
        )
        return accepted(self._queue, items)
