"""The demo provider: its performer's speech comes back as the bridge's events, the way a
remote provider's data packets do, and its face is built off the event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from bridge.config import AvatarConfig, CameraConfig
from bridge.media.frames import AudioChunk, VideoFrame
from bridge.providers.demo import DemoProvider, DemoSession
from bridge.providers.events import AvatarEvent
from bridge.source.base import MediaHandlers
from bridge.source.local import PERFORMER_TOPIC, LocalSource, performer_packet
from bridge.synthetic.performer import SpeechEvent
from bridge.synthetic.voice import Utterance, tone
from tests.kit.eventually import eventually

CAMERA = CameraConfig(width=128, height=72, fps=30)


def beeps(text: str) -> Utterance:
    """A fast stand-in voice: 0.2 s, one word at the start and one in the middle."""
    words = text.split()
    return Utterance(tone(440, 0.2), tuple((0.1 * i, w) for i, w in enumerate(words)))


async def test_the_performers_speech_comes_back_as_avatar_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = DemoProvider(avatar=AvatarConfig(), camera=CAMERA)
    session = await provider.open_session()
    monkeypatch.setattr(session.media.performer, "_synth", beeps)
    events: list[AvatarEvent] = []
    frames: list[VideoFrame] = []
    present: list[bool] = []

    def data(payload: bytes, topic: str | None) -> None:
        events.extend(session.decode(payload, topic))

    def audio(chunk: AudioChunk) -> None:
        pass

    source = LocalSource(session.media, MediaHandlers(frames.append, audio, data, present.append))
    async with asyncio.TaskGroup() as group:
        running = group.create_task(source.run(), name="demo-source")
        task = await session.speak("hello demo", "repeat", None)
        ended = await eventually(lambda: [e for e in events if e.kind == "speak_ended"])
        running.cancel()
    assert present == [True] and frames and frames[0].width == 128
    assert [e.kind for e in events] == ["speak_started", "speak_text", "speak_text", "speak_ended"]
    assert {e.task_id for e in events} == {task}
    assert "".join(e.text for e in events) == "hello demo"
    assert ended[0].duration_ms == pytest.approx(200, abs=1) and not ended[0].interrupted


def test_decode_reads_only_the_performers_packets() -> None:
    session = DemoSession.__new__(DemoSession)  # decode needs no performer
    started = performer_packet(SpeechEvent("started", "t1", text="hi"))
    assert session.decode(started, PERFORMER_TOPIC) == [AvatarEvent("speak_started", "t1")]
    assert session.decode(started, "agent-response") == []
    finished = performer_packet(SpeechEvent("finished", "t1", text="hi"))
    assert session.decode(finished, PERFORMER_TOPIC) == []  # the words already went out
    for garbage in (b"not json", b"[1]", b'{"kind": "started"}', b'{"task": 1}'):
        assert session.decode(garbage, PERFORMER_TOPIC) == []


async def test_the_face_is_built_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    built_on: list[threading.Thread] = []

    class Performer:
        def __init__(self, **options: Any) -> None:
            built_on.append(threading.current_thread())

    monkeypatch.setattr("bridge.providers.demo.Performer", Performer)
    await DemoProvider(avatar=AvatarConfig(), camera=CAMERA).open_session()
    assert built_on and built_on[0] is not threading.main_thread()
