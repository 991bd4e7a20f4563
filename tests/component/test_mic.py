"""The virtual microphone against a real, private PulseAudio (tests/kit/pulse.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from bridge.cli import devices as devices_cli
from bridge.config import Config, MicrophoneConfig, Secrets, Settings
from bridge.devices import portaudio as mic_portaudio
from bridge.devices.pactl import (
    PACTL_FIX,
    Pactl,
    VirtualDevices,
    clean_text,
    null_sink_args,
    remap_source_args,
    server_fix,
)
from bridge.devices.pulse_modules import DeviceState, PulseDevices
from bridge.devices.pulse_stream import BLOCK, RATE
from bridge.errors import DeviceUnavailable
from bridge.media.frames import AudioChunk
from bridge.sinks.mic import MicSink
from tests.kit.eventually import eventually
from tests.kit.pulse import PrivatePulse, Recorder, check_tone, rms, running_mic, sine

SPEAKER = "Avatar Speaker"
MIC_DESCRIPTION = 'Bob\'s "Avatar" Mic \\ test'
MIC_SHOWN = "Bob’s ”Avatar” Mic test"


def mic_config(**overrides: Any) -> MicrophoneConfig:
    values: dict[str, Any] = {
        "sink_name": "test_avatar_sink",
        "sink_description": SPEAKER,
        "source_name": "test_avatar_mic",
        "source_description": MIC_DESCRIPTION,
    }
    values.update(overrides)
    return MicrophoneConfig(**values)


def ours(server: PrivatePulse, cfg: VirtualDevices) -> list[tuple[int, str]]:
    return [
        (index, name)
        for index, name, args in server.modules()
        if f"sink_name={cfg.sink_name}" in args or f"source_name={cfg.source_name}" in args
    ]


def by_name(server: PrivatePulse, kind: str, name: str) -> dict[str, str] | None:
    return next((o for o in server.objects(kind) if o["Name"] == name), None)


@pytest.fixture
async def devices(pulse_server: PrivatePulse) -> AsyncIterator[PulseDevices]:
    made = PulseDevices(mic_config())
    yield made
    if made.sink_module is not None:
        await made.down()


# --- argument strings (no server) ------------------------------------------------------------


def test_descriptions_cannot_break_the_module_arguments() -> None:
    assert clean_text(MIC_DESCRIPTION, "x") == MIC_SHOWN
    assert clean_text("a\nb\tc\x00d", "x") == "a b c d"
    assert clean_text(" '' ", "fallback") == "’’"
    assert clean_text("\\\\", "fallback") == "fallback"
    assert clean_text("x" * 500, "f") == "x" * 120
    cfg = mic_config()
    assert null_sink_args(cfg)[-1] == "sink_properties=\"device.description='Avatar Speaker'\""
    assert remap_source_args(cfg)[-1] == (f"source_properties=\"device.description='{MIC_SHOWN}'\"")
    assert "master=test_avatar_sink.monitor" in remap_source_args(cfg)
    assert {"rate=48000", "channels=1", "channel_map=mono"} <= set(null_sink_args(cfg))


# --- devices on a real server --------------------------------------------------------------------


async def test_up_makes_sink_and_mic_with_names_and_descriptions(
    pulse_server: PrivatePulse, devices: PulseDevices
) -> None:
    state = await devices.up()
    assert state.ready and state.server == "PulseAudio" and state.generation == 1
    sink = by_name(pulse_server, "sinks", "test_avatar_sink")
    source = by_name(pulse_server, "sources", "test_avatar_mic")
    assert sink is not None and source is not None
    assert sink["Description"] == SPEAKER
    assert source["Description"] == MIC_SHOWN
    assert sink["Sample Specification"] == "s16le 1ch 48000Hz"
    assert sink["Channel Map"] == "mono"
    assert source["Channel Map"] == "mono"


async def test_the_mic_is_not_a_monitor(pulse_server: PrivatePulse, devices: PulseDevices) -> None:
    await devices.up()
    source = by_name(pulse_server, "sources", "test_avatar_mic")
    monitor = by_name(pulse_server, "sources", "test_avatar_sink.monitor")
    assert source is not None and monitor is not None
    assert source["device.class"] == "filter"
    assert source["Monitor of Sink"] == "n/a"
    assert monitor["device.class"] == "monitor"
    # What monitor-hiding pickers (OBS, plasma-pa) keep: the mic, never the monitor.
    listed = [
        o["Name"] for o in pulse_server.objects("sources") if o.get("device.class") != "monitor"
    ]
    assert listed == ["test_avatar_mic"]


async def test_leftovers_of_a_crash_are_removed_first(
    pulse_server: PrivatePulse, devices: PulseDevices
) -> None:
    cfg = devices.cfg
    crashed = [
        int(pulse_server.pactl("load-module", *null_sink_args(cfg))),
        int(pulse_server.pactl("load-module", *remap_source_args(cfg))),
    ]
    # a remap source of a sink that is already gone (its sink name taken by nobody)
    await devices.up()
    modules = ours(pulse_server, cfg)
    assert sorted(name for _, name in modules) == ["module-null-sink", "module-remap-source"]
    assert not {index for index, _ in modules} & set(crashed)
    assert devices.leftovers_removed == 2
    names = [o["Name"] for o in pulse_server.objects("sinks")]
    assert names.count("test_avatar_sink") == 1
    sources = [o["Name"] for o in pulse_server.objects("sources")]
    assert sources.count("test_avatar_mic") == 1
    assert not any(n.startswith("test_avatar_mic.") for n in sources)


async def test_down_removes_everything_and_restores_the_default(
    pulse_server: PrivatePulse,
) -> None:
    pulse_server.pactl("load-module", "module-null-sink", "sink_name=real_speakers")
    pulse_server.pactl("set-default-source", "real_speakers.monitor")
    devices = PulseDevices(mic_config(make_default=True))
    await devices.up()
    assert "Default Source: test_avatar_mic" in pulse_server.pactl("info")
    removed = await devices.down()
    assert len(removed) == 2
    assert ours(pulse_server, devices.cfg) == []
    assert by_name(pulse_server, "sinks", "test_avatar_sink") is None
    assert by_name(pulse_server, "sources", "test_avatar_mic") is None
    assert "Default Source: real_speakers.monitor" in pulse_server.pactl("info")


async def test_cli_up_status_down(
    pulse_server: PrivatePulse, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(config=Config(microphone=mic_config()), secrets=Secrets())

    async def cli(action: str, *, as_json: bool = False) -> tuple[int, str]:
        code = await devices_cli.run(argparse.Namespace(action=action, json=as_json), settings)
        return code, capsys.readouterr().out

    code, out = await cli("status")
    assert code == 1 and "missing" in out and "fix: heygen-bridge devices up" in out
    code, out = await cli("up")
    assert code == 0 and "module #" in out
    code, out = await cli("status")
    assert code == 0
    assert "server: PulseAudio" in out
    assert "test_avatar_sink" in out and "test_avatar_mic" in out and "missing" not in out
    code, out = await cli("status", as_json=True)
    assert code == 0 and '"exists": true' in out
    code, out = await cli("down")
    assert code == 0 and "removed modules" in out
    assert ours(pulse_server, settings.config.microphone) == []


async def test_made_again_after_the_server_restarts(pulse_server: PrivatePulse) -> None:
    cfg = mic_config()
    async with running_mic(cfg) as (mic, devices):
        await eventually(lambda: mic.stats.state == "silent", what="mic writing")
        pulse_server.kill()
        await eventually(lambda: mic.stats.state == "unavailable", what="mic unavailable")
        await eventually(lambda: not devices.state.ready, what="devices marked gone")
        mic.put(AudioChunk(np.zeros(BLOCK, np.int16), RATE, time.perf_counter()))  # no raise
        assert mic.stats.dropped_chunks >= 1
        await asyncio.to_thread(pulse_server.start)
        await eventually(lambda: devices.state.ready, within=10, what="devices made again")
        assert devices.generation == 2 and devices.recreated == 1
        assert by_name(pulse_server, "sources", "test_avatar_mic") is not None
        await eventually(lambda: mic.stats.state == "silent", within=10, what="mic reconnected")
        assert mic.stats.reconnects == 1
    assert ours(pulse_server, cfg) == []


@pytest.mark.parametrize("when", ["at once", "later"])
async def test_made_again_when_someone_unloads_them(pulse_server: PrivatePulse, when: str) -> None:
    cfg = mic_config()

    def unload_at_once(state: DeviceState) -> None:
        # before the watcher's subscription exists: the window a removal could slip through
        if when == "at once" and state.ready and state.generation == 1:
            pulse_server.pactl("unload-module", str(state.modules[0]))

    devices = PulseDevices(cfg, on_change=unload_at_once)
    keeper = asyncio.create_task(devices.maintain(), name="mic-devices")
    try:
        await eventually(lambda: devices.generation >= 1, what="devices made")
        if when == "later":
            await eventually(lambda: devices.state.ready, what="devices made")
            pulse_server.pactl("unload-module", str(devices.sink_module))
        await eventually(
            lambda: devices.state.ready and devices.generation == 2, what="devices made again"
        )
        assert len(ours(pulse_server, cfg)) == 2
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    assert ours(pulse_server, cfg) == []


# --- the audio path ----------------------------------------------------------------------------


@pytest.fixture
async def live_mic(pulse_server: PrivatePulse) -> AsyncIterator[MicSink]:
    async with running_mic(mic_config()) as (mic, _):
        await eventually(lambda: mic.stats.state == "silent", what="mic writing silence")
        yield mic


async def test_a_sine_arrives_whole_through_the_virtual_mic(
    pulse_server: PrivatePulse, live_mic: MicSink
) -> None:
    recorder = Recorder("test_avatar_mic", env=dict(os.environ)).start()
    try:
        await eventually(lambda: recorder.seconds() > 0.2, what="recorder running")
        tone = sine(440, 3.0, amplitude=0.5)
        rng = random.Random(7)
        latencies: list[float] = []
        start = time.perf_counter() + 0.02
        due = start
        for k in range(len(tone) // BLOCK):
            due = max(due, start + k * 0.010 + rng.uniform(-0.008, 0.008))
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            live_mic.put(AudioChunk(tone[k * BLOCK : (k + 1) * BLOCK], RATE, time.perf_counter()))
            if k % 10 == 5:
                latency = live_mic.latency_ms()
                if latency is not None:
                    latencies.append(latency)
        await asyncio.sleep(0.4)
    finally:
        await asyncio.to_thread(recorder.stop)
    check = check_tone(recorder.samples(), expected_rms=rms(tone))
    stats = live_mic.stats
    print(
        f"\n{check}\nlatency_ms median {statistics.median(latencies):.1f}, stats {stats.snapshot()}"
    )
    assert check.seconds > 2.5
    assert abs(check.frequency - 440) <= 2
    assert abs(check.level_db) <= 1
    assert check.longest_zero_run_ms <= 20
    assert check.longest_dip_ms <= 20
    assert stats.underruns == 0
    assert stats.overruns == 0
    assert 60 <= statistics.median(latencies) <= 150


async def test_an_idle_mic_delivers_silence_at_once(
    pulse_server: PrivatePulse, live_mic: MicSink
) -> None:
    await asyncio.sleep(0.3)
    recorder = Recorder("test_avatar_mic", env=dict(os.environ)).start()
    try:
        await eventually(lambda: recorder.first_data_after() is not None, within=3)
        await asyncio.sleep(0.3)
    finally:
        await asyncio.to_thread(recorder.stop)
    first = recorder.first_data_after()
    assert first is not None
    print(f"\nfirst data after {first * 1000:.0f} ms")
    assert first < 0.15
    assert not recorder.samples().any()  # silence


# --- without a sound server ----------------------------------------------------------------------


async def test_no_server_mic_stays_up_unavailable_with_a_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/heygen-bridge-test/native")
    cfg = mic_config()
    with pytest.raises(DeviceUnavailable) as caught:
        await PulseDevices(cfg).up()
    assert caught.value.fix == server_fix()
    async with running_mic(cfg) as (mic, _):
        await eventually(lambda: mic.stats.state == "unavailable", what="mic unavailable")
        for _ in range(5):
            mic.put(AudioChunk(np.ones(BLOCK, np.int16), RATE, time.perf_counter()))
        snap = mic.stats.snapshot()
        assert snap["fix"] == server_fix() and "server" in snap["last_error"]
        assert snap["dropped_chunks"] == 5
        assert mic.latency_ms() is None
        keeper = next(t for t in asyncio.all_tasks() if t.get_name() == "mic-devices")
        assert not keeper.done()  # the devices keep trying
    assert mic.stats.state == "stopped"


async def test_no_server_mic_alone_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/heygen-bridge-test/native")
    mic = MicSink(mic_config())
    mic.start()
    try:
        await eventually(lambda: mic.stats.state == "unavailable", what="mic unavailable")
        mic.put(AudioChunk(np.ones(BLOCK, np.int16), RATE, time.perf_counter()))
        assert mic.stats.fix == server_fix()
        assert "Connection refused" in (mic.stats.last_error or "")
    finally:
        await mic.aclose()


async def test_missing_pactl_says_how_to_install_it() -> None:
    with pytest.raises(DeviceUnavailable) as caught:
        await PulseDevices(mic_config(), pactl=Pactl("pactl-not-installed-here")).up()
    assert caught.value.fix == PACTL_FIX


async def test_missing_sink_says_devices_up(pulse_server: PrivatePulse) -> None:
    mic = MicSink(mic_config())
    mic.start()
    try:
        await eventually(lambda: mic.stats.state == "unavailable", what="mic unavailable")
        assert mic.stats.fix == "heygen-bridge devices up"
    finally:
        await mic.aclose()


def test_put_drops_audio_of_the_wrong_format() -> None:
    mic = MicSink(mic_config())
    mic.put(AudioChunk(np.zeros(441, np.int16), 44100, 0.0))
    assert mic.stats.bad_chunks == 1 and "48000 Hz" in (mic.stats.last_error or "")


# --- other systems (a fake sounddevice) -----------------------------------------------------------


def test_portaudio_output_is_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[np.ndarray[Any, Any]] = []

    class FakeStream:
        latency = 0.012

        def __init__(self, **kw: Any) -> None:
            self.kw = kw

        def start(self) -> None:
            pass

        def write(self, data: np.ndarray[Any, Any]) -> None:
            written.append(data)

        def stop(self) -> None:
            pass

        def close(self) -> None:
            pass

    devices = [
        {"name": "Speakers (Realtek)", "max_output_channels": 2, "hostapi": 0},
        {"name": "CABLE Output (VB-Audio Virtual Cable)", "max_output_channels": 0, "hostapi": 0},
        {"name": "CABLE Input (VB-Audio Virtual C", "max_output_channels": 2, "hostapi": 0},
        {"name": "CABLE Input (VB-Audio Virtual Cable)", "max_output_channels": 2, "hostapi": 2},
        {"name": "CABLE Input (VB-Audio Virtual Cable)", "max_output_channels": 2, "hostapi": 1},
    ]
    fake = types.ModuleType("sounddevice")
    fake.query_hostapis = lambda: [  # type: ignore[attr-defined]
        {"name": "MME"},
        {"name": "Windows DirectSound"},
        {"name": "Windows WASAPI"},
    ]
    fake.query_devices = lambda index=None: devices if index is None else devices[index]  # type: ignore[attr-defined]
    fake.OutputStream = FakeStream  # type: ignore[attr-defined]
    fake.PortAudioError = RuntimeError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", fake)

    out = mic_portaudio.PortAudioOutput("CABLE Input")
    assert out.name == "sounddevice → CABLE Input (VB-Audio Virtual Cable)"
    assert out._stream.kw["device"] == 4  # DirectSound: full name, resamples
    out.write(np.full(BLOCK, 7, np.int16))
    assert written[0].shape == (BLOCK, 2) and (written[0] == 7).all()
    assert out.latency_ms() == 12
    with pytest.raises(DeviceUnavailable) as caught:
        mic_portaudio.PortAudioOutput("BlackHole 2ch")
    assert "vb-audio.com" in caught.value.fix or "blackhole" in caught.value.fix
