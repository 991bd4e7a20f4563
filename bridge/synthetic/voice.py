"""The demo avatar's voice: text → 48 kHz mono PCM with word timings.

``espeak-ng`` speaks when it is installed; otherwise (or when it fails) a clearly synthetic tone
pattern stands in, one short beep per syllable-ish chunk.  Both paths follow one speaking-rate
model, :func:`estimate_duration`: the bridge's only one (the HeyGen simulator's ``duration_ms``
and the speech queue's wait for the end of a request use it too).

Everything here blocks (a subprocess, resampling): call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import io
import logging
import math
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass

import av
import numpy as np

from bridge.media.frames import I16

__all__ = [
    "MAX_TEXT_CHARS",
    "WORDS_PER_MINUTE",
    "Utterance",
    "estimate_duration",
    "synthesize",
    "tone",
]

log = logging.getLogger(__name__)

# Speaking-rate model: 150 "standard words" per minute at rate 1.0, where a standard word is five
# non-space characters (the typing-speed convention), so long words take longer than short ones.
# espeak-ng's "-s 150" speaks ordinary English text at about this rate.
WORDS_PER_MINUTE = 150.0
CHARS_PER_WORD = 5.0
ESPEAK_MIN_WPM, ESPEAK_MAX_WPM = 80, 450
# The caller validates text length; this is only a backstop against huge input.
MAX_TEXT_CHARS = 5000
ESPEAK_TIMEOUT = 60.0
VOICED_THRESHOLD = 300  # |sample| above this counts as voice when finding the spoken span

_LANGUAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+\-/]{0,39}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_SYLLABLE_RE = re.compile(r"[aeiouyäöüàáâèéêìíîòóôùúû]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Utterance:
    """Mono s16 audio plus the start time (seconds into ``samples``) of every word."""

    samples: I16
    words: tuple[tuple[float, str], ...]
    sample_rate: int = 48000

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def _check_rate(rate: float) -> None:
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate must be a positive number, got {rate!r}")


def _clean(text: str) -> str:
    """Control characters become spaces; the text is capped at a word boundary."""
    text = _CONTROL_RE.sub(" ", text)
    if len(text) > MAX_TEXT_CHARS:
        cut = text.rfind(" ", 0, MAX_TEXT_CHARS)
        text = text[: cut if cut > 0 else MAX_TEXT_CHARS]
    return text.strip()


def estimate_duration(text: str, rate: float = 1.0) -> float:
    """Seconds it takes to say ``text`` at ``rate`` (1.0 = 150 words of 5 letters a minute)."""
    _check_rate(rate)
    letters = sum(len(word) for word in text.split())
    if letters == 0:
        return 0.0
    words = max(1.0, letters / CHARS_PER_WORD)
    return words * 60.0 / (WORDS_PER_MINUTE * rate)


def tone(freq: float, seconds: float, *, level: float = 0.5, sample_rate: int = 48000) -> I16:
    """A sine of ``freq`` Hz, ``seconds`` long, peak ``level`` of full scale, from phase 0."""
    if not 0 < freq < sample_rate / 2:
        raise ValueError(f"freq must be in (0, {sample_rate / 2}), got {freq}")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be in [0, 1], got {level}")
    n = round(seconds * sample_rate)
    phase = (2.0 * math.pi * freq / sample_rate) * np.arange(n, dtype=np.float64)
    return np.rint(np.sin(phase) * (level * 32767.0)).astype(np.int16)


def synthesize(
    text: str, *, rate: float = 1.0, language: str = "en", sample_rate: int = 48000
) -> Utterance:
    """Speak ``text`` (untrusted) with espeak-ng, or a synthetic tone pattern without it.

    Blocking.  Empty or blank text gives an empty utterance.  ``language`` is an espeak-ng voice
    name such as ``en``, ``en-us`` or ``de``; an unknown voice falls back to the tone pattern.
    """
    _check_rate(rate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not _LANGUAGE_RE.fullmatch(language):
        raise ValueError(f"invalid language/voice name {language!r}")
    text = _clean(text)
    if not text:
        return Utterance(np.zeros(0, dtype=np.int16), (), sample_rate)
    exe = shutil.which("espeak-ng")
    if exe is not None:
        try:
            return _espeak(exe, text, rate=rate, language=language, sample_rate=sample_rate)
        except (OSError, subprocess.SubprocessError, ValueError, EOFError, wave.Error) as exc:
            log.warning("espeak-ng failed (%s); using the synthetic voice", exc)
    return _tone_voice(text, rate=rate, sample_rate=sample_rate)


def _espeak(exe: str, text: str, *, rate: float, language: str, sample_rate: int) -> Utterance:
    wpm = min(ESPEAK_MAX_WPM, max(ESPEAK_MIN_WPM, round(WORDS_PER_MINUTE * rate)))
    # No shell; "--" ends the options, so text such as "--help" or "-v xx" is spoken.
    argv = [exe, "--stdout", "-v", language, "-s", str(wpm), "--", text]
    proc = subprocess.run(argv, capture_output=True, timeout=ESPEAK_TIMEOUT, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()[:200]
        raise ValueError(f"exit status {proc.returncode}: {detail}")
    with wave.open(io.BytesIO(proc.stdout), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError("espeak-ng wrote an unexpected WAV format")
        in_rate = wav.getframerate()
        # The header's frame count is a placeholder (stdout cannot seek): read to the end.
        raw = wav.readframes(2**31 - 1)
    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16, copy=False)
    samples = _resample(pcm, in_rate, sample_rate)
    return Utterance(samples, _spread_words(text, samples, sample_rate), sample_rate)


def _resample(pcm: I16, in_rate: int, out_rate: int) -> I16:
    if in_rate == out_rate or pcm.size == 0:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = in_rate
    out = [*resampler.resample(frame), *resampler.resample(None)]
    if not out:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16, copy=False)


def _spread_words(text: str, samples: I16, sample_rate: int) -> tuple[tuple[float, str], ...]:
    """Word start times spread over the voiced span in proportion to word length."""
    words = text.split()
    if not words:
        return ()
    voiced = np.flatnonzero(np.abs(samples.astype(np.int32)) > VOICED_THRESHOLD)
    if voiced.size:
        t0, t1 = voiced[0] / sample_rate, (voiced[-1] + 1) / sample_rate
    else:
        t0, t1 = 0.0, len(samples) / sample_rate
    weights = np.array([len(w) + 1 for w in words], dtype=np.float64)
    starts = t0 + (t1 - t0) * (np.cumsum(weights) - weights) / weights.sum()
    return tuple((float(s), w) for s, w in zip(starts, words, strict=True))


def _syllables(word: str) -> int:
    groups = len(_SYLLABLE_RE.findall(word))
    return max(1, groups if groups else math.ceil(len(word) / 3))


def _tone_voice(text: str, *, rate: float, sample_rate: int) -> Utterance:
    """One short, pitch-varying beep (0.2 of full scale) per syllable; duration per the model."""
    words = text.split()
    counts = [_syllables(w) for w in words]
    total = sum(counts)
    duration = estimate_duration(text, rate)
    n = round(duration * sample_rate)
    out = np.zeros(n, dtype=np.float64)
    slot = n / total
    length = max(1, int(slot * 0.7))
    ramp = min(length // 2, int(0.01 * sample_rate))
    env = np.ones(length, dtype=np.float64)
    if ramp > 0:
        edge = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, ramp))
        env[:ramp] = edge
        env[length - ramp :] = edge[::-1]
    t = np.arange(length, dtype=np.float64) / sample_rate
    for i in range(total):
        freq = 190.0 + 50.0 * math.sin(i * 1.7) + 25.0 * (i % 3)
        start = int(i * slot)
        seg = out[start : start + length]
        seg += (0.2 * 32767.0) * env[: seg.size] * np.sin(2.0 * math.pi * freq * t[: seg.size])
    first = np.cumsum([0, *counts[:-1]])
    word_times = tuple(
        (float(k * slot / sample_rate), w) for k, w in zip(first, words, strict=True)
    )
    return Utterance(np.rint(out).astype(np.int16), word_times, sample_rate)
