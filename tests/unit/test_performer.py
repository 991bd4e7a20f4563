"""The performer: speech queue, events on the media clock, interrupt, sync marks, picture."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from bridge.media.frames import I16, i420_size
from bridge.synthetic.face import FaceRenderer
from bridge.synthetic.performer import CLICK_SECONDS, Performer, SpeechEvent
from bridge.synthetic.stamp import Stamp, decode, luma_of_i420
from bridge.synthetic.voice import Utterance, tone

SR = 48000
WORD_S = 0.1  # the fake voice says one word every 100 ms
W, H = 320, 180


def fake_synth(text: str, *, freq: float = 440.0) -> Utterance:
    """Deterministic voice: a tone, one word every WORD_S seconds."""
    words = text.split()
    samples = tone(freq, len(words) * WORD_S, level=0.3)
    return Utterance(samples, tuple((i * WORD_S, w) for i, w in enumerate(words)), SR)


def make(*, synth: Callable[[str], Utterance] = fake_synth, sync_marks: bool = False) -> Performer:
    return Performer(width=W, height=H, fps=30, synth=synth, sync_marks=sync_marks)


def pull_until_idle(
    p: Performer, chunk: int = 480, limit_s: float = 30.0
) -> tuple[I16, list[tuple[float, SpeechEvent]]]:
    """Pull audio in ``chunk`` steps until nothing plays; events with the clock after their pull."""
    audio: list[I16] = []
    events: list[tuple[float, SpeechEvent]] = []
    while p.speaking and p.media_time < limit_s:
        audio.append(p.pull_audio(chunk))
        events += [(p.media_time, e) for e in p.drain_events()]
    return (np.concatenate(audio) if audio else np.zeros(0, np.int16)), events


def kinds(events: list[tuple[float, SpeechEvent]], task_id: str | None = None) -> list[str]:
    return [e.kind for _, e in events if task_id is None or e.task_id == task_id]


async def test_events_in_exact_order_per_utterance() -> None:
    p = make()
    text = "Hello brave new world"
    duration = await p.say(text, "t1")
    assert duration == pytest.approx(0.4)
    assert p.speaking
    _, events = pull_until_idle(p)
    assert kinds(events) == ["started", "words", "words", "words", "words", "finished", "ended"]
    evs = [e for _, e in events]
    assert all(e.task_id == "t1" for e in evs)
    assert evs[0].text == text
    assert "".join(e.text for e in evs if e.kind == "words") == text
    assert evs[-2].text == text and not evs[-2].interrupted
    assert evs[-1].duration_ms == 400 and not evs[-1].interrupted
    assert not p.speaking


@pytest.mark.parametrize(
    "text", ["  leading and   multiple spaces\ttab trailing  ", "one", "a\nb", "  ", "ünï cödé ✓"]
)
async def test_chunks_concatenate_to_the_text(text: str) -> None:
    p = make()
    await p.say(text, "t")
    _, events = pull_until_idle(p)
    chunks = [e.text for _, e in events if e.kind == "words"]
    assert "".join(chunks) == text
    assert kinds(events)[0] == "started" and kinds(events)[-2:] == ["finished", "ended"]


async def test_events_happen_when_the_clock_reaches_them() -> None:
    p = make()
    await p.say("zero one two three four", "t")
    _, events = pull_until_idle(p, chunk=480)  # 10 ms steps
    times = {e.text.strip(): t for t, e in events if e.kind == "words"}
    for i, word in enumerate(["zero", "one", "two", "three", "four"]):
        # Emitted by the pull that contains the word's first sample (i * 100 ms).
        assert i * WORD_S < times[word] <= i * WORD_S + 0.010 + 1e-9
    started = next(t for t, e in events if e.kind == "started")
    ended = next(t for t, e in events if e.kind == "ended")
    assert started == pytest.approx(0.010)
    assert ended == pytest.approx(0.5)


async def test_queued_utterances_play_in_call_order() -> None:
    freqs = {"alpha one": 300.0, "beta two": 600.0, "gamma three": 1200.0}
    delays = {"alpha one": 0.3, "beta two": 0.1, "gamma three": 0.0}

    def slow_synth(text: str) -> Utterance:
        time.sleep(delays[text])  # the first one finishes synthesizing last
        return fake_synth(text, freq=freqs[text])

    p = make(synth=slow_synth)
    durations = await asyncio.gather(*(p.say(t, t.split()[0]) for t in freqs))
    assert durations == pytest.approx([0.2, 0.2, 0.2])
    audio, events = pull_until_idle(p)
    order = [e.task_id for _, e in events if e.kind == "started"]
    assert order == ["alpha", "beta", "gamma"]
    for task in order:
        assert kinds(events, task) == ["started", "words", "words", "finished", "ended"]
    # The audio is the three utterances back to back, in that order.
    expected = np.concatenate([fake_synth(t, freq=f).samples for t, f in freqs.items()])
    assert np.array_equal(audio[: len(expected)], expected)
    assert not audio[len(expected) :].any()


async def test_interrupt_ends_current_and_drops_queued() -> None:
    p = make()
    await p.say("one two three four five six seven eight", "a")
    await p.say("queued b", "b")
    p.play_signal(tone(1000, 0.5), "c")
    for _ in range(25):  # 250 ms: three words reached
        p.pull_audio(480)
    p.interrupt()
    events = p.drain_events()
    assert [(e.task_id, e.kind) for e in events] == [
        ("a", "started"),
        ("a", "words"),
        ("a", "words"),
        ("a", "words"),
        ("a", "finished"),
        ("a", "ended"),
        ("b", "finished"),
        ("b", "ended"),
        ("c", "finished"),
        ("c", "ended"),
    ]
    a_finished, a_ended = events[4], events[5]
    assert a_finished.interrupted and a_ended.interrupted
    assert a_finished.text == "one two three"
    assert a_ended.duration_ms == 250
    assert all(e.interrupted and e.duration_ms == 0 for e in events[6:])
    assert not p.speaking
    assert not p.pull_audio(4800).any()
    assert p.drain_events() == []
    # The performer keeps working afterwards.
    await p.say("after", "d")
    _, later = pull_until_idle(p)
    assert kinds(later) == ["started", "words", "finished", "ended"]


async def test_interrupt_while_synthesizing_drops_it() -> None:
    release = threading.Event()

    def blocked_synth(text: str) -> Utterance:
        release.wait(5)
        return fake_synth(text)

    p = make(synth=blocked_synth)
    task = asyncio.create_task(p.say("late words", "x"))
    await asyncio.sleep(0.05)
    assert p.speaking  # accepted, waiting for its audio
    assert not p.pull_audio(480).any()
    p.interrupt()
    release.set()
    assert await task == pytest.approx(0.2)
    assert [(e.kind, e.interrupted, e.duration_ms) for e in p.drain_events()] == [
        ("finished", True, 0),
        ("ended", True, 0),
    ]
    assert not p.speaking
    assert not p.pull_audio(SR).any()
    assert p.drain_events() == []


async def test_a_failing_synth_raises_and_leaves_the_queue_clean() -> None:
    def failing(text: str) -> Utterance:
        if text == "bad":
            raise RuntimeError("synth broke")
        return fake_synth(text)

    p = make(synth=failing)
    with pytest.raises(RuntimeError, match="synth broke"):
        await p.say("bad", "b")
    assert not p.speaking
    await p.say("good one", "g")
    _, events = pull_until_idle(p)
    assert {e.task_id for _, e in events} == {"g"}


def test_silence_when_idle() -> None:
    p = make()
    assert not p.speaking
    assert p.media_time == 0.0
    for n in (480, 960, 1, 0):
        chunk = p.pull_audio(n)
        assert chunk.dtype == np.int16 and len(chunk) == n and not chunk.any()
    assert p.media_time == pytest.approx(1441 / SR)
    assert p.drain_events() == []
    with pytest.raises(ValueError, match="n must be"):
        p.pull_audio(-1)


def test_play_signal_is_played_verbatim() -> None:
    p = make()
    signal = tone(1000, 0.5, level=0.25)
    p.play_signal(signal, "sig")
    audio, events = pull_until_idle(p, chunk=700)
    assert np.array_equal(audio[: len(signal)], signal)
    assert not audio[len(signal) :].any()
    assert kinds(events) == ["started", "finished", "ended"]
    assert events[-1][1].duration_ms == 500 and events[0][1].text == ""


def test_sync_marks_land_on_the_sample() -> None:
    p = make(sync_marks=True)
    chunks = [p.pull_audio(n) for n in [700, 333, 1600, 479] * 50]  # odd sizes straddle marks
    audio = np.concatenate(chunks)
    click_len = round(CLICK_SECONDS * SR)
    marks = [k * SR for k in range(1, len(audio) // SR + 1) if k * SR + click_len <= len(audio)]
    assert len(marks) >= 2
    for mark in marks:
        assert audio[mark] == 32767
        assert not audio[mark - 100 : mark].any()  # silence right before the click
        burst = audio[mark : mark + click_len]
        assert np.abs(burst).max() == 32767
        freq = np.fft.rfftfreq(click_len, 1 / SR)[np.argmax(np.abs(np.fft.rfft(burst)))]
        assert freq == pytest.approx(3000, abs=SR / click_len)
        assert not audio[mark + click_len : mark + click_len + 100].any()
    loud = np.flatnonzero(audio)
    assert set((loud // SR).tolist()) == set(range(1, len(audio) // SR + 1))
    assert loud.min() == SR  # nothing before the first mark at 1 s


def test_no_marks_without_sync_marks() -> None:
    p = make()
    assert not p.pull_audio(3 * SR).any()
    buf = p.render(0, 0)
    stamp = decode(luma_of_i420(buf, W, H))
    assert stamp is not None and not stamp.sync


def test_sync_flag_on_the_frame_that_contains_the_mark_lockstep() -> None:
    """Lockstep driver: pull one frame's worth of audio, then render that frame."""
    p = make(sync_marks=True)
    per_frame = SR // 30
    sync_frames = []
    for frame in range(100):
        p.pull_audio(per_frame)
        stamp = decode(luma_of_i420(p.render(frame, 1000 + frame), W, H))
        assert stamp is not None and stamp.frame == frame and stamp.sent_ms == 1000 + frame
        if stamp.sync:
            sync_frames.append(frame)
    assert sync_frames == [30, 60, 90]


def test_sync_flag_with_small_audio_chunks() -> None:
    """10 ms pulls, a frame rendered once 1600 more samples are pulled (30 fps): the sync frame
    is the first one rendered after the pull that contained the mark."""
    p = make(sync_marks=True)
    frame, pulled, next_frame_at = 0, 0, 1600
    renders: list[tuple[int, bool]] = []  # (samples pulled before the render, sync flag)
    while pulled < 5 * SR:
        p.pull_audio(480)
        pulled += 480
        if pulled >= next_frame_at:
            stamp = decode(luma_of_i420(p.render(frame, 0), W, H))
            assert stamp is not None
            renders.append((pulled, stamp.sync))
            frame += 1
            next_frame_at += 1600
    for (before, _), (at, sync) in itertools.pairwise(renders):
        has_mark = any(before <= k * SR < at for k in range(1, 6))
        assert sync == has_mark, (before, at)
    assert sum(sync for _, sync in renders) == 4


def test_render_returns_an_i420_picture_with_the_stamp() -> None:
    p = Performer(width=640, height=360, fps=25, synth=fake_synth)
    buf = p.render(2**24 + 5, 2**32 + 7)
    assert buf.dtype == np.uint8 and buf.shape == (i420_size(640, 360),)
    assert decode(luma_of_i420(buf, 640, 360)) == Stamp(5, 7, False)
    assert p.render(6, 8) is buf  # one reused buffer


def _caption_ink(p: Performer) -> int:
    """Bright (text) pixels in the caption strip at the bottom of the picture."""
    y = luma_of_i420(p.render(0, 0), W, H)
    return int(np.count_nonzero(y[int(H * 0.86) :, :] > 200))


async def test_caption_shows_while_speaking_and_clears_after() -> None:
    p = make()
    assert _caption_ink(p) == 0
    await p.say("Hi there", "t")
    p.pull_audio(SR // 10)
    assert _caption_ink(p) > 0
    pull_until_idle(p)
    p.pull_audio(SR)  # 1 s after the end: still up
    assert _caption_ink(p) > 0
    p.pull_audio(SR)  # 2 s after the end: cleared
    assert _caption_ink(p) == 0


async def test_mouth_moves_with_the_audio() -> None:
    p = make()
    p.pull_audio(1600)
    quiet = p.render(0, 0).copy()
    await p.say("open wide", "t")
    p.pull_audio(1600)
    loud = p.render(0, 0)
    # Same stamp, caption strip aside: the face differs (the mouth is open).
    face_rows = slice(int(H * 0.3), int(H * 0.8))
    yq, yl = luma_of_i420(quiet, W, H), luma_of_i420(loud, W, H)
    assert np.count_nonzero(yq[face_rows] != yl[face_rows]) > 20


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")
async def test_real_voice_end_to_end() -> None:
    p = Performer(width=W, height=H, fps=30)
    text = "Testing the demo avatar voice."
    duration = await p.say(text, "real")
    assert 0.8 < duration < 5.0
    audio, events = pull_until_idle(p, chunk=960)
    assert kinds(events) == ["started"] + ["words"] * 5 + ["finished", "ended"]
    assert "".join(e.text for _, e in events if e.kind == "words") == text
    assert events[-1][1].duration_ms == round(duration * 1000)
    assert np.abs(audio).max() > 3000


@pytest.mark.parametrize(
    "caption",
    [
        "x" * 500,  # one word wider than the picture
        "word " * 2000,
        "emoji 🙂 and ünïcödé ✓ and 漢字",
        "line\nbreaks\tand\ttabs",
        "   ",
    ],
    ids=["long-word", "many-words", "unicode", "whitespace", "blank"],
)
def test_face_copes_with_any_caption(caption: str) -> None:
    face = FaceRenderer(W, H)
    for i in range(1, 4):  # growing, then replaced
        buf = face.render(mouth_open=0.5, caption=caption[: i * len(caption) // 3], t=i, stamp=None)
        assert buf.shape == (i420_size(W, H),)
    face.render(mouth_open=float("nan"), caption="", t=float("inf"), stamp=None)


def test_face_restores_the_corner_when_the_stamp_goes() -> None:
    face = FaceRenderer(640, 360)
    clean = face.render(mouth_open=0, caption="", t=0, stamp=None).copy()
    stamped = face.render(mouth_open=0, caption="", t=0, stamp=Stamp(9, 9, True))
    assert decode(luma_of_i420(stamped, 640, 360)) == Stamp(9, 9, True)
    again = face.render(mouth_open=0, caption="", t=0, stamp=None)
    assert decode(luma_of_i420(again, 640, 360)) is None
    assert np.array_equal(again, clean)


@pytest.mark.parametrize(("width", "height"), [(641, 360), (640, 361), (32, 32)])
def test_face_needs_even_sizes(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even dimensions"):
        FaceRenderer(width, height)


def test_a_picture_too_small_for_the_stamp_renders_without_it() -> None:
    p = Performer(width=160, height=90, fps=30, synth=fake_synth)
    buf = p.render(1, 2)
    assert buf.shape == (i420_size(160, 90),)
    assert decode(luma_of_i420(buf, 160, 90)) is None
