"""The receive delay of a track, from libwebrtc's cumulative inbound-rtp counters, and the
voice's lag behind the picture that the two tracks' delays give."""

from __future__ import annotations

import pytest
from livekit.rtc._proto import stats_pb2

from bridge.source.rx_delay import STATS_BIAS_MS, Counters, ReceiveDelay, counters, voice_lag_ms


def inbound(**fields: float) -> stats_pb2.RtcStats:
    entry = stats_pb2.RtcStats()
    for name, value in fields.items():
        setattr(entry.inbound_rtp.inbound, name, value)
    return entry


def test_counters_are_read_per_kind_from_the_inbound_entry() -> None:
    other = stats_pb2.RtcStats()
    other.transport.transport.bytes_sent = 5
    stats = [
        other,
        inbound(
            jitter_buffer_delay=2880.0,
            jitter_buffer_emitted_count=48000,
            total_processing_delay=3.0,
            frames_decoded=60,
        ),
    ]
    assert counters("audio", stats) == Counters(2880.0, 48000)
    assert counters("video", stats) == Counters(3.0, 60)
    assert counters("audio", [other]) is None


def test_the_delay_is_the_mean_over_the_last_window() -> None:
    delay = ReceiveDelay("video")
    assert delay.update(Counters(10.0, 300)) is None  # no window yet
    assert delay.update(Counters(11.5, 330)) == pytest.approx(50.0)  # 1.5 s over 30 frames
    assert delay.update(Counters(12.1, 360)) == pytest.approx(20.0)
    assert delay.update(None) == pytest.approx(20.0)  # no stats this time: the last figure


def test_a_stalled_track_keeps_the_last_figure_and_a_new_stream_starts_over() -> None:
    delay = ReceiveDelay("audio")
    delay.update(Counters(0.0, 0))
    # 48 000 samples that waited 60 ms each
    assert delay.update(Counters(2880.0, 48000)) == pytest.approx(60.0)
    assert delay.update(Counters(2880.1, 48100)) == pytest.approx(60.0)  # too few samples
    assert delay.update(Counters(10.0, 1000)) == pytest.approx(60.0)  # counters went back
    assert delay.update(Counters(10.0 + 0.08 * 9600, 10600)) == pytest.approx(80.0)


def test_the_voice_lag_is_the_difference_less_the_stats_bias() -> None:
    assert voice_lag_ms(80.0, 30.0) == pytest.approx(50.0 - STATS_BIAS_MS)
    assert voice_lag_ms(None, 30.0) == 0.0
    assert voice_lag_ms(80.0, None) == 0.0
