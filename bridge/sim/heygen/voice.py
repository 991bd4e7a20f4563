"""HeyGen voice chat in the fake: the avatar hears a user audio track in its room and answers.

The Streaming SDK's voice chat publishes the user's microphone into the LiveKit room; HeyGen
runs VAD and STT on it and answers through its LLM (reference §3.1).  The fake hears by energy
(:mod:`bridge.sim.listening`) and sends, as data packets without topic::

    user_start                      the user began to speak
    user_stop                       ... and stopped
    user_talking_message {message}  what was "recognised": "(heard 1.5 s of speech)"
    user_end_message                end of the user's transcript
    avatar_start_talking {task_id} ... avatar_stop_talking {task_id, duration_ms}
                                    the chat reply, spoken as for a ``chat`` task

Push-to-talk (SDK 2.1.0, LiveKit transport): the client publishes the JSON strings
``"push_to_talk:start"`` / ``"push_to_talk:stop"``; from the first of them on, the avatar only
hears between a start and a stop (the SDK chooses the mode when voice chat starts; the fake
takes the first message as that choice).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.sim.media import AvatarLink, Heard
from bridge.synthetic.reply import chat_reply

if TYPE_CHECKING:
    from bridge.sim.heygen.rest import HeyGenSession

log = logging.getLogger(__name__)

PUSH_TO_TALK_START = "push_to_talk:start"
PUSH_TO_TALK_STOP = "push_to_talk:stop"
Now = Callable[[], float]


def take(session: HeyGenSession, payload: bytes, topic: str | None) -> None:
    """A data packet from the room: the push-to-talk strings open and close the talk window."""
    try:
        message = json.loads(payload)
    except ValueError:
        return
    if message in (PUSH_TO_TALK_START, PUSH_TO_TALK_STOP):
        session.push_to_talk = True
        session.talk_window = message == PUSH_TO_TALK_START


def gate(session: HeyGenSession) -> bool:
    """Whether the avatar listens now (in push-to-talk only while the talk window is open)."""
    return not session.push_to_talk or session.talk_window


def hear(session: HeyGenSession, now: Now, heard: Heard) -> None:
    """The avatar's ears heard speech begin or end (voice input counts as activity)."""
    if session.state != "connected":
        return
    session.last_activity = now()
    if session.heard.full():
        log.warning("sim heygen %s: voice inbox full", session.session_id[:8])
        return
    session.heard.put_nowait(heard)


async def converse(session: HeyGenSession, now: Now) -> None:
    """Answer what the avatar hears, one utterance after another (the session's worker)."""
    while True:
        heard = await session.heard.get()
        link = session.link
        if link is None:
            return
        await _turn(session, link, heard, now)


async def _turn(session: HeyGenSession, link: AvatarLink, heard: Heard, now: Now) -> None:
    if heard.kind == "started":
        await _send(link, {"type": "user_start"})
        return
    text = f"(heard {heard.seconds:.1f} s of speech)"
    await _send(link, {"type": "user_stop"})
    await _send(link, {"type": "user_talking_message", "message": text})
    await _send(link, {"type": "user_end_message"})
    reply = chat_reply(text)
    duration = await link.say(reply, str(uuid.uuid4()))
    at = now()
    session.speaking_until = max(session.speaking_until, at) + duration
    session.last_activity = at
    session.history.append(reply)


async def _send(link: AvatarLink, body: dict[str, Any]) -> None:
    await link.publish(json.dumps(body).encode(), "")
