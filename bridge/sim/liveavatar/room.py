"""The LiveAvatar avatar's side of the room: FULL-mode commands in, events out (§3).

Commands arrive on topic ``agent-control``: ``avatar.speak_text``, ``avatar.speak_response``
(answered with a canned reply), ``avatar.interrupt``, listening and push-to-talk; anything else
is ignored.  Events go out on ``agent-response`` as ``{event_id, event_type, session_id,
source_event_id, ...}``, where ``source_event_id`` is the command that caused the event.

The avatar also hears the other participants' audio (:mod:`bridge.sim.listening`): always in a
CONVERSATIONAL session, inside the talk window in a PUSH_TO_TALK one.  An utterance is answered
as a voice turn (reference §3.2): ``user.speak_started``, ``user.speak_ended``,
``user.transcription {text}`` (a canned "(heard 1.5 s of speech)": no speech recognition),
then, when the persona has a context (without one the avatar runs in restricted mode and does
not answer), ``avatar.transcription {text}`` and the reply spoken like a ``speak_response``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from bridge.sim.liveavatar.session import LiveAvatarSession
from bridge.sim.media import AvatarLink, Heard, Packets
from bridge.synthetic.performer import SpeechEvent
from bridge.synthetic.reply import chat_reply

log = logging.getLogger(__name__)

CONTROL_TOPIC = "agent-control"
EVENT_TOPIC = "agent-response"
Now = Callable[[], float]


class LiveAvatarDialect:
    """FULL-mode server events on ``agent-response`` for one session."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._announced: set[str] = set()

    def announce(self, task_id: str) -> None:
        """The reply text of this task was already published (``speak_response``)."""
        self._announced.add(task_id)

    def event(self, event_type: str, source_event_id: str | None, **fields: Any) -> bytes:
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "session_id": self.session_id,
            "source_event_id": source_event_id,
            **fields,
        }
        return json.dumps(body).encode()

    def packets(self, event: SpeechEvent) -> Packets:
        task = event.task_id
        if event.kind == "started":
            return [(self.event("avatar.speak_started", task), EVENT_TOPIC)]
        if event.kind == "words":
            return [(self.event("avatar.transcription.chunk", task, text=event.text), EVENT_TOPIC)]
        if event.kind == "finished":
            if task in self._announced:
                self._announced.discard(task)
                return []
            if not event.text:
                return []
            return [(self.event("avatar.transcription", task, text=event.text), EVENT_TOPIC)]
        return [(self.event("avatar.speak_ended", task), EVENT_TOPIC)]


def take(session: LiveAvatarSession, now: Now, payload: bytes, topic: str | None) -> None:
    """A data packet from the room: commands on ``agent-control`` queue up; garbage is ignored."""
    if topic != CONTROL_TOPIC or session.state == "closed":
        return
    try:
        message = json.loads(payload)
    except ValueError:
        return
    if not isinstance(message, dict) or not isinstance(message.get("event_type"), str):
        return
    session.last_activity = now()
    session.commands.append(message)
    if session.inbox.full():
        log.warning("sim liveavatar %s: command inbox full", session.session_id[:8])
        return
    session.inbox.put_nowait(message)


def hear(session: LiveAvatarSession, now: Now, heard: Heard) -> None:
    """The avatar's ears heard speech begin or end: queued behind the commands before it."""
    if session.state != "connected":
        return
    session.last_activity = now()
    if session.inbox.full():
        log.warning("sim liveavatar %s: command inbox full", session.session_id[:8])
        return
    session.inbox.put_nowait(heard)


def gate(session: LiveAvatarSession) -> bool:
    """Whether the avatar listens now (audio outside a push-to-talk window is ignored)."""
    return session.interactivity != "PUSH_TO_TALK" or session.talk_window


async def work(session: LiveAvatarSession, now: Now) -> None:
    """Carry out the commands in order (the avatar speaks one thing after another)."""
    while True:
        message = await session.inbox.get()
        link = session.link
        if link is None:
            return
        if isinstance(message, Heard):
            await _voice_turn(session, link, message, now)
        else:
            await _command(session, link, message, now)


async def _command(
    session: LiveAvatarSession, link: AvatarLink, message: dict[str, Any], now: Now
) -> None:
    kind = message["event_type"]
    raw_id = message.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and raw_id else None
    text = message.get("text")
    spoken = text if isinstance(text, str) and text.strip() else None
    if kind == "avatar.speak_text" and spoken is not None:
        await _say(session, link, spoken, event_id or str(uuid.uuid4()), now)
    elif kind == "avatar.speak_response" and spoken is not None:
        await _respond(session, link, spoken, event_id or str(uuid.uuid4()), now)
    elif kind == "avatar.interrupt":
        link.interrupt()
        session.speaking_until = 0.0
    elif kind in ("avatar.start_listening", "avatar.stop_listening"):
        session.listening = kind == "avatar.start_listening"
    elif kind in ("user.start_push_to_talk", "user.stop_push_to_talk"):
        start = kind == "user.start_push_to_talk"
        if session.interactivity == "PUSH_TO_TALK":
            session.talk_window = start
            answer = "user.push_to_talk_started" if start else "user.push_to_talk_stopped"
        else:
            answer = "user.push_to_talk_start_failed" if start else "user.push_to_talk_stop_failed"
        await link.publish(session.dialect.event(answer, event_id), EVENT_TOPIC)
    # Anything else (session.stop, undeclared commands) is ignored, as far as we know.


async def _voice_turn(session: LiveAvatarSession, link: AvatarLink, heard: Heard, now: Now) -> None:
    if heard.kind == "started":
        await link.publish(session.dialect.event("user.speak_started", None), EVENT_TOPIC)
        return
    heard_text = f"(heard {heard.seconds:.1f} s of speech)"
    for packet in (
        session.dialect.event("user.speak_ended", None),
        session.dialect.event("user.transcription", None, text=heard_text),
    ):
        await link.publish(packet, EVENT_TOPIC)
    if session.persona.get("context_id") is not None:
        await _respond(session, link, heard_text, str(uuid.uuid4()), now)


async def _respond(
    session: LiveAvatarSession, link: AvatarLink, text: str, task_id: str, now: Now
) -> None:
    """The "LLM" answers at once: its text first, then the avatar speaks it."""
    reply = chat_reply(text)
    session.dialect.announce(task_id)
    packet = session.dialect.event("avatar.transcription", task_id, text=reply)
    await link.publish(packet, EVENT_TOPIC)
    await _say(session, link, reply, task_id, now)


async def _say(
    session: LiveAvatarSession, link: AvatarLink, text: str, task_id: str, now: Now
) -> None:
    duration = await link.say(text, task_id)
    at = now()
    session.speaking_until = max(session.speaking_until, at) + duration
    session.last_activity = at
    session.history.append(text)
