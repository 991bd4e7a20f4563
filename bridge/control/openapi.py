"""``GET /v1/openapi.json``: the control API described in OpenAPI 3.1.

Written by hand, kept true by ``tests/component/test_openapi.py``: every route the full app
serves (the WebSocket, panel and preview that other modules add included) is here with its
methods, nothing here is missing from the app, and each route's answers match the schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge import __version__

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: Schema | None = None, media: str = JSON) -> Schema:
    out: Schema = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def _refusal(description: str) -> Schema:
    return _answer(description, ref("Error"))


REFUSALS = {
    "401": _refusal("A token is configured and this request has none, or a wrong one"),
    "403": _refusal("A foreign Host, or (on routes that change state) a page of another origin"),
}
SPEAK_REFUSALS = {
    "400": _refusal("Malformed: not JSON, an unknown field, a bad text, mode or priority"),
    **REFUSALS,
    "429": _refusal("The queue is full or this client is over its rate; see Retry-After"),
}
ACCEPTED = _answer("Queued (answered at once, before the speech)", ref("Accepted"))
FIELDS_SCHEMA: Schema = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "description": "What to say (split into items if long)"},
        "mode": {"type": "string", "enum": ["repeat", "chat"], "default": "repeat"},
        "priority": {"type": "string", "enum": ["normal", "now"], "default": "normal"},
    },
}


def _query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _op(summary: str, responses: Schema, **extra: Any) -> Schema:
    return {"summary": summary, "responses": responses, **extra}


def _speak_paths() -> Schema:
    return {
        "/v1/speak": {
            "post": _op(
                "Queue text to speak. JSON whatever the Content-Type; text/plain (the text "
                "itself); or a form",
                {"202": ACCEPTED, **SPEAK_REFUSALS, "413": _refusal("Body over 64 KiB")},
                requestBody={
                    "required": True,
                    "content": {
                        JSON: {"schema": FIELDS_SCHEMA},
                        "text/plain": {"schema": {"type": "string"}},
                        "application/x-www-form-urlencoded": {"schema": FIELDS_SCHEMA},
                        "multipart/form-data": {"schema": FIELDS_SCHEMA},
                    },
                },
            ),
            "get": _op(
                "Queue text to speak, from the query string (Stream Deck's Website action)",
                {"202": ACCEPTED, **SPEAK_REFUSALS},
                parameters=[
                    _query("text", {"type": "string"}, "What to say", required=True),
                    _query("mode", FIELDS_SCHEMA["properties"]["mode"], "repeat or chat"),
                    _query("priority", FIELDS_SCHEMA["properties"]["priority"], "now: first"),
                ],
            ),
        },
    }


def _queue_paths() -> Schema:
    item_id = [_path_param("id", "A queue item's id, e.g. s12")]
    return {
        "/v1/interrupt": {
            "post": _op(
                "Stop the current speech",
                {
                    "200": _answer("Stopped (or nothing was speaking)", ref("Interrupted")),
                    **REFUSALS,
                    "409": _refusal("No live session"),
                    "502": _refusal("The provider refused"),
                },
            )
        },
        "/v1/queue": {
            "get": _op(
                "The queue: current item, then waiting ones",
                {"200": _answer("The queue", ref("Queue")), **REFUSALS},
            )
        },
        "/v1/queue/clear": {
            "post": _op(
                "Drop every waiting item (not the one being spoken)",
                {"200": _answer("What was dropped", ref("Cleared")), **REFUSALS},
            )
        },
        "/v1/queue/{id}": {
            "get": _op(
                "One item: current, waiting or recent",
                {
                    "200": _answer("The item", ref("SpeechItem")),
                    **REFUSALS,
                    "404": _refusal("No such item"),
                },
                parameters=item_id,
            ),
            "delete": _op(
                "Drop one waiting item",
                {
                    "200": _answer("The dropped item", ref("Removed")),
                    **REFUSALS,
                    "404": _refusal("No such waiting item"),
                },
                parameters=item_id,
            ),
        },
    }


def _preset_paths() -> Schema:
    speak = _op(
        "Speak a preset (named text from the config)",
        {
            "202": ACCEPTED,
            **REFUSALS,
            "404": _refusal("No such preset"),
            "429": SPEAK_REFUSALS["429"],
        },
        parameters=[_path_param("name", "The preset's name in the config")],
    )
    return {
        "/v1/presets": {
            "get": _op("The presets", {"200": _answer("The presets", ref("Presets")), **REFUSALS})
        },
        "/v1/presets/{name}": {"post": speak, "get": speak},
    }


def _state_paths() -> Schema:
    return {
        "/v1/status": {
            "get": _op(
                "Everything: session, source, camera, mic, speech, events, API",
                {"200": _answer("The bridge's state", ref("Status")), **REFUSALS},
            )
        },
        "/v1/state": {
            "get": _op(
                "Small and flat, for Companion polling",
                {"200": _answer("The state", ref("State")), **REFUSALS},
            )
        },
        "/v1/snapshot.jpg": {
            "get": _op(
                "The frame the camera shows now",
                {
                    "200": _answer("A JPEG", {"type": "string", "format": "binary"}, "image/jpeg"),
                    **REFUSALS,
                    "409": _refusal("The camera is disabled"),
                },
            )
        },
        "/healthz": {
            "get": _op(
                "The process and its loop answer (no token)",
                {"200": _answer("Alive", ref("Health"))},
                security=[],
            )
        },
        "/readyz": {
            "get": _op(
                "A session is live and the camera writes (no token)",
                {"200": _answer("Ready", ref("Ready")), "503": _refusal("Not ready: why")},
                security=[],
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus text format",
                {"200": _answer("Metrics", {"type": "string"}, "text/plain"), **REFUSALS},
            )
        },
        "/v1/openapi.json": {
            "get": _op(
                "This document", {"200": _answer("OpenAPI 3.1", {"type": "object"}), **REFUSALS}
            )
        },
    }


def _added_paths() -> Schema:
    """The routes other modules add (WebSocket hub, panel, preview), under the same guard."""
    return {
        "/v1/ws": {
            "get": _op(
                "WebSocket: speak/interrupt/clear/subscribe/listen; events pushed. Without a "
                "token in the handshake, send it in the first message",
                {"101": _answer("Switching to WebSocket"), **REFUSALS},
            )
        },
        "/": {
            "get": _op(
                "The web panel (no token: it reads ?token= from its own URL)",
                {"200": _answer("HTML", {"type": "string"}, "text/html")},
                security=[],
            )
        },
        "/static/{name}": {
            "get": _op(
                "The panel's files (no token)",
                {"200": _answer("A file"), "404": _refusal("No such file")},
                parameters=[_path_param("name", "A file of the panel")],
                security=[],
            )
        },
        **_listen_paths(),
        "/overlay": {
            "get": _op(
                "The overlay page for OBS's Browser Source: the avatar on a transparent "
                "background, optional captions (no token: it reads ?token= from its own URL)",
                {"200": _answer("HTML", {"type": "string"}, "text/html")},
                security=[],
            )
        },
        "/v1/overlay.ws": {
            "get": _op(
                "WebSocket: the overlay's video, raw I420 with an alpha plane per message; "
                "the page sends a text message after drawing each frame",
                {"101": _answer("Switching to WebSocket"), **REFUSALS},
            )
        },
        "/v1/preview.mjpg": {
            "get": _op(
                "The camera as MJPEG, encoded only while watched",
                {
                    "200": _answer("multipart/x-mixed-replace JPEG frames"),
                    "400": _refusal("fps is not a positive number"),
                    **REFUSALS,
                    "409": _refusal("The camera is disabled"),
                    "503": _refusal("The bridge is shutting down"),
                },
                parameters=[_query("fps", {"type": "number"}, "Frames per second (capped)")],
            )
        },
    }


def _listen_paths() -> Schema:
    """Listen mode (bridge/control/listen.py): the avatar's ears on and off."""
    state = {
        "type": "object",
        "required": ["mode", "listening"],
        "properties": {
            "mode": {"type": "string", "enum": ["off", "conversational", "push-to-talk"]},
            "listening": {"type": "boolean"},
            "avatar_told": {"type": "string", "enum": ["yes", "not live", "no such command"]},
        },
    }
    answers = {
        "200": _answer("The state after it", state),
        **REFUSALS,
        "409": _refusal("listen.mode is off, or this system has no virtual speaker"),
        "502": _refusal("The provider refused (a start is then undone)"),
    }
    start = _op("Open the avatar's ears (push-to-talk: press; conversational: unmute)", answers)
    stop = _op("Close the avatar's ears (push-to-talk: release; conversational: mute)", answers)
    return {
        "/v1/listen": {
            "get": _op(
                "Listen mode: the state, the meeting's level, what went to the avatar",
                {"200": _answer("Listen mode", state), **REFUSALS},
            )
        },
        "/v1/listen/start": {"post": start, "get": start},
        "/v1/listen/stop": {"post": stop, "get": stop},
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
MAYBE_STRING: Schema = {"type": ["string", "null"]}
ITEMS: Schema = {"type": "array", "items": ref("SpeechItem")}


def _object(properties: Schema, *, closed: bool = False) -> Schema:
    """An object with every one of ``properties`` (``closed``: and nothing else)."""
    out: Schema = {"type": "object", "required": list(properties), "properties": properties}
    if closed:
        out["additionalProperties"] = False
    return out


def _item_schema() -> Schema:
    states = ["queued", "sending", "speaking", "done", "dropped", "failed"]
    return _object(
        {
            "id": STRING,
            "request_id": STRING,
            "part": INTEGER,
            "parts": INTEGER,
            "text": STRING,
            "mode": {"type": "string", "enum": ["repeat", "chat"]},
            "priority": {"type": "string", "enum": ["normal", "now"]},
            "source": STRING,
            "state": {"type": "string", "enum": states},
            "detail": MAYBE_STRING,
            "task_id": MAYBE_STRING,
            "created": {"type": "number"},
        }
    )


def _schemas() -> Schema:
    preset = _object({"name": STRING, "text": STRING, "mode": STRING, "priority": STRING})
    return {
        "Error": _object({"error": STRING, "detail": STRING}, closed=True),
        "SpeechItem": _item_schema(),
        "Accepted": _object(
            {
                "id": {"type": "string", "description": "The request's id (its items share it)"},
                "items": ITEMS,
                "position": {"type": "integer", "description": "1: next; 0: being sent"},
            }
        ),
        "Interrupted": _object({"interrupted": {"oneOf": [ref("SpeechItem"), {"type": "null"}]}}),
        "Cleared": _object({"cleared": ITEMS}),
        "Removed": _object({"removed": ref("SpeechItem")}),
        "Queue": _object({"speaking": BOOLEAN, "depth": INTEGER, "items": ITEMS, "recent": ITEMS}),
        "State": _object(
            {
                "state": STRING,
                "speaking": BOOLEAN,
                "queue_length": INTEGER,
                "session_seconds_left": {"type": ["integer", "null"]},
                "provider": MAYBE_STRING,
            }
        ),
        "Presets": _object({"presets": {"type": "array", "items": preset}}),
        "Status": _object({"control": _object({"errors": INTEGER, "refused": {"type": "object"}})}),
        "Health": _object({"status": {"const": "ok"}}),
        "Ready": _object({"ready": {"const": True}}),
    }


def document() -> Schema:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "heygen-bridge control API", "version": __version__},
        "security": [{"bearer": []}, {"query": []}, {}],
        "paths": {
            **_speak_paths(),
            **_queue_paths(),
            **_preset_paths(),
            **_state_paths(),
            **_added_paths(),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


def routes() -> list[web.RouteDef]:
    body = document()

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.json_response(body)

    return [web.get("/v1/openapi.json", serve)]
