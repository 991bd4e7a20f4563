"""The bridge's own avatar events: what every provider's data-channel messages map onto.

Status, logs, the WebSocket and the web panel only ever see these, whichever provider spoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "speak_started",  # the avatar began speaking task_id
    "speak_text",  # a piece of the transcript of what the avatar says (text)
    "speak_ended",  # the avatar finished (or was interrupted in) task_id
    "user_text",  # a transcript of the user's speech (text): one utterance, whole
    "user_ended",  # HeyGen only, inside its decoder: the end of the user's utterance
    "session_stopped",  # the provider ended the session (text = reason)
]


@dataclass(frozen=True, slots=True)
class AvatarEvent:
    kind: EventKind
    task_id: str | None = None
    text: str = ""
    duration_ms: float | None = None
    interrupted: bool = False
