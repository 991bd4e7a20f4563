"""``heygen-bridge status``: the daemon's ``GET /v1/status`` as a few lines a person reads.

Pure formatting, no I/O.  The status comes from another process, maybe another version, so
every field is optional here: what is missing reads as ``?`` and never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXCERPT = 48  # characters of an item's text shown
SHOW_QUEUED = 5  # waiting items listed under the queue line


def summary(status: Mapping[str, Any], url: str) -> list[str]:
    """One line per part: provider, session, camera, microphone, queue (+ the next items)."""
    rows = [
        ("provider", str(status.get("provider") or "?")),
        ("session", session_line(_part(status, "session"))),
        ("camera", camera_line(_part(status, "camera"))),
        ("microphone", microphone_line(_part(status, "microphone"))),
        ("queue", queue_line(_part(status, "speech"))),
    ]
    lines = [f"heygen-bridge {status.get('version') or '?'} at {url}"]
    lines += [f"  {name:<11} {text}" for name, text in rows]
    lines += [f"  {'':<11}   next: {item_line(item)}" for item in queued(_part(status, "speech"))]
    return lines


def session_line(session: Mapping[str, Any]) -> str:
    """``live, session 3f2a…, 287 s left``; a failure's last error after the state."""
    parts = [str(session.get("state") or "?")]
    if session.get("session_id"):
        parts.append(f"session {session['session_id']}")
    left = session.get("seconds_left")
    if isinstance(left, int | float):
        parts.append(f"{left:.0f} s left")
    line = ", ".join(parts)
    if session.get("last_error") and session.get("state") != "live":
        line += f" (last error: {session['last_error']})"
    return line


def camera_line(camera: Mapping[str, Any]) -> str:
    """``writing /dev/video10, showing avatar, 1234 frames out, 0 dropped``, or the fix."""
    state = str(camera.get("state") or "?")
    if state == "disabled":
        return "disabled (camera.enabled: false)"
    parts = [f"{state} {camera['device']}" if camera.get("device") else state]
    if camera.get("showing"):
        parts.append(f"showing {camera['showing']}")
    for key, label in (("frames_out", "frames out"), ("dropped", "dropped")):
        if isinstance(camera.get(key), int):
            parts.append(f"{camera[key]} {label}")
    return ", ".join(parts) + _trouble(camera)


def microphone_line(mic: Mapping[str, Any]) -> str:
    """``speaking into heygen_avatar_mic, 0 underruns``, or why it cannot."""
    state = str(mic.get("state") or "?")
    if state == "disabled":
        return "disabled (microphone.enabled: false)"
    parts = [f"{state} into {mic['source']}" if mic.get("source") else state]
    if isinstance(mic.get("underruns"), int):
        parts.append(f"{mic['underruns']} underruns")
    return ", ".join(parts) + _trouble(mic)


def queue_line(speech: Mapping[str, Any]) -> str:
    """What is being spoken now, and how many items wait."""
    pending = speech.get("pending")
    waiting = f"{pending} waiting" if isinstance(pending, int) else "? waiting"
    current = speech.get("current")
    if isinstance(current, Mapping):
        return f"{item_line(current)}, {waiting}"
    return f"nothing being spoken, {waiting}"


def queued(speech: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The first waiting items (the ``queue`` list; the current item is not among them)."""
    items = speech.get("queue")
    if not isinstance(items, list):
        return []
    current = speech.get("current")
    current_id = current.get("id") if isinstance(current, Mapping) else None
    waiting = [i for i in items if isinstance(i, Mapping) and i.get("id") != current_id]
    return waiting[:SHOW_QUEUED]


def item_line(item: Mapping[str, Any]) -> str:
    """``s12 speaking "Hello there, I am your…" (chat)``."""
    text = " ".join(str(item.get("text") or "").split())
    if len(text) > EXCERPT:
        text = text[: EXCERPT - 1] + "…"
    mode = f" ({item['mode']})" if item.get("mode") not in (None, "repeat") else ""
    return f'{item.get("id") or "?"} {item.get("state") or "?"} "{text}"{mode}'


def _trouble(part: Mapping[str, Any]) -> str:
    """A part's last error and fix, when it has them."""
    labels = (("last_error", "error"), ("fix", "fix"))
    shown = [f"{label}: {part[key]}" for key, label in labels if part.get(key)]
    return f" ({'; '.join(shown)})" if shown else ""


def _part(status: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = status.get(name)
    return value if isinstance(value, Mapping) else {}
