"""The demo voice: espeak-ng when installed, a synthetic tone pattern otherwise."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import numpy as np
import pytest

from bridge.media.frames import I16
from bridge.synthetic import voice as speech
from bridge.synthetic.voice import Utterance, estimate_duration, synthesize, tone

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed: apt-get install espeak-ng",
)

SENTENCE = "The quick brown fox jumps over the lazy dog near the river."


def _dominant_frequency(samples: I16, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1.0 / sample_rate)[int(np.argmax(spectrum))])


def _check_words(utt: Utterance, text: str) -> None:
    assert [w for _, w in utt.words] == text.split()
    starts = [t for t, _ in utt.words]
    assert starts == sorted(starts)
    assert starts[0] >= 0.0 and starts[-1] < utt.duration


class _RunSpy:
    """Wraps subprocess.run to record argv and results (the real command still runs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], subprocess.CompletedProcess[bytes]]] = []
        self._run = subprocess.run

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        assert kw.get("shell", False) is False
        result: subprocess.CompletedProcess[bytes] = self._run(argv, **kw)
        self.calls.append((list(argv), result))
        return result


@needs_espeak
def test_espeak_gives_48k_speech_with_word_times() -> None:
    utt = synthesize(SENTENCE)
    assert utt.sample_rate == 48000
    assert utt.samples.dtype == np.int16 and utt.samples.ndim == 1
    estimate = estimate_duration(SENTENCE)
    assert 0.6 * estimate < utt.duration < 1.6 * estimate
    _check_words(utt, SENTENCE)
    # Real speech: loud enough, and not one steady tone.
    assert np.abs(utt.samples).max() > 3000
    assert utt.words[-1][0] > 0.6 * utt.duration


@needs_espeak
def test_rate_changes_the_speed() -> None:
    slow = synthesize(SENTENCE, rate=0.75)
    fast = synthesize(SENTENCE, rate=1.5)
    assert fast.duration < 0.75 * slow.duration


@needs_espeak
def test_other_sample_rates() -> None:
    utt = synthesize("Hello there.", sample_rate=24000)
    assert utt.sample_rate == 24000
    assert 0.3 < utt.duration < 3.0


@needs_espeak
@pytest.mark.parametrize("text", ["--help", "-v xx", "--stdout -w /tmp/x.wav", "-", "--"])
def test_hostile_text_is_spoken_not_parsed(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _RunSpy()
    monkeypatch.setattr("subprocess.run", spy)
    utt = synthesize(text)
    [(argv, result)] = spy.calls
    assert argv[-2:] == ["--", text]
    assert result.returncode == 0
    assert result.stdout[:4] == b"RIFF"  # espeak-ng spoke it (help text would not be a WAV)
    if any(c.isalpha() for c in text):  # espeak-ng says nothing for bare dashes
        assert utt.duration > 0.3
    assert [w for _, w in utt.words] == text.split()


@needs_espeak
def test_unknown_voice_falls_back_to_tones() -> None:
    utt = synthesize("hello world", language="xx-nonexistent")
    assert utt.duration == pytest.approx(estimate_duration("hello world"), abs=0.01)


@pytest.mark.parametrize("language", ["-x", "en us", "", "a" * 60, "en;rm"])
def test_bad_language_is_rejected(language: str) -> None:
    with pytest.raises(ValueError, match="language"):
        synthesize("hi", language=language)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_text_gives_an_empty_utterance(text: str) -> None:
    utt = synthesize(text)
    assert utt.samples.size == 0 and utt.words == () and utt.duration == 0.0


def test_control_characters_do_not_crash() -> None:
    utt = synthesize("nul\x00 in the \x1b[31m middle")
    assert utt.duration > 0


def test_fallback_without_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    utt = synthesize(SENTENCE)
    assert utt.sample_rate == 48000
    assert utt.duration == pytest.approx(estimate_duration(SENTENCE), abs=0.01)
    _check_words(utt, SENTENCE)
    peak = np.abs(utt.samples).max()
    assert 0.15 * 32767 < peak <= 0.21 * 32767  # about 0.2 of full scale
    # One beep per syllable-ish chunk: there are silent gaps between them.
    frames = utt.samples[: len(utt.samples) // 480 * 480].reshape(-1, 480)
    loud = np.abs(frames).max(axis=1) > 1000
    assert np.count_nonzero(np.diff(loud.astype(int)) == 1) >= len(SENTENCE.split()) - 1


def test_fallback_when_espeak_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1, b"", b"boom")

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/espeak-ng")
    monkeypatch.setattr("subprocess.run", broken)
    utt = synthesize("two words")
    assert utt.duration == pytest.approx(estimate_duration("two words"), abs=0.01)


def test_fallback_on_garbage_output(monkeypatch: pytest.MonkeyPatch) -> None:
    def garbage(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 0, b"Usage: espeak-ng [options]", b"")

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/espeak-ng")
    monkeypatch.setattr("subprocess.run", garbage)
    assert synthesize("some words here").duration > 0


def test_huge_text_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    utt = synthesize("word " * 10_000)
    assert len(utt.words) <= speech.MAX_TEXT_CHARS // 5 + 1


def test_estimate_duration() -> None:
    assert estimate_duration("") == 0.0
    assert estimate_duration("   ") == 0.0
    # 150 five-letter words a minute.
    assert estimate_duration("abcde " * 150) == pytest.approx(60.0)
    assert estimate_duration("abcde " * 150, rate=2.0) == pytest.approx(30.0)
    assert estimate_duration("a") > 0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate"):
            estimate_duration("x", bad)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_tone_frequency_and_level(freq: float) -> None:
    samples = tone(freq, 1.0, level=0.5)
    assert samples.dtype == np.int16 and len(samples) == 48000
    assert abs(_dominant_frequency(samples, 48000) - freq) <= 1.0
    assert abs(int(np.abs(samples).max()) - 16384) <= 2
    assert samples[0] == 0


def test_tone_arguments() -> None:
    assert len(tone(440, 0.5, sample_rate=16000)) == 8000
    assert len(tone(440, 0.0)) == 0
    with pytest.raises(ValueError, match="freq"):
        tone(30000, 1.0)
    with pytest.raises(ValueError, match="level"):
        tone(440, 1.0, level=1.5)
