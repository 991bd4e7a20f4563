"""``GET /metrics``: the bridge in Prometheus' text format (``prometheus_client``).

Its own :class:`CollectorRegistry` (nothing global; two servers in one process do not mix):
a collector that reads the bridge's status at scrape time (counters the sinks, the session
manager and the queue already keep — nothing is counted twice), plus what only the event bus
sees: the speech latency histogram (``speech.speaking``'s ``latency_s``, from accepted to
speaking) and the session's reconnects.  Always the classic text format 0.0.4 (every
Prometheus reads it; content negotiation by ``Accept`` is not worth a crash on a bad one).

=======================================================  =================================
``heygen_bridge_info{version,provider}``                 1
``heygen_bridge_session_state{state}``                   1 for the current state, else 0
``heygen_bridge_session_seconds_left``                   until the provider's duration limit
``heygen_bridge_sessions_opened_total``                  sessions opened
``heygen_bridge_session_reconnects_total``               times the session went reconnecting
``heygen_bridge_source_rejoins_total``                   times the source rejoined its room
``heygen_bridge_camera_state{state}``                    1 for the current state, else 0
``heygen_bridge_camera_frames_total{kind}``              in, out, dropped, repeated, slate
``heygen_bridge_camera_max_gap_seconds``                 longest gap between fresh frames
``heygen_bridge_camera_write_failures_total``            device writes that raised
``heygen_bridge_mic_state{state}``                       1 for the current state, else 0
``heygen_bridge_mic_underruns_total`` (and overruns,     the jitter buffer and the writer
late_writes, dropped_chunks, reconnects)
``heygen_bridge_mic_latency_seconds``                    arrival to the sound server's output
``heygen_bridge_speech_queue_depth``                     items waiting
``heygen_bridge_speech_speaking``                        1 while an item is being spoken
``heygen_bridge_speech_items_total{state}``              items finished: done, dropped, failed
``heygen_bridge_speech_latency_seconds`` (histogram)     accepted → speaking
``heygen_bridge_control_refusals_total{status}``         API answers ≥ 400, by status
``heygen_bridge_control_errors_total``                   API answers 500 (bugs)
``heygen_bridge_events_dropped_total``                   events slow listeners lost
=======================================================  =================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, get_args

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from bridge.control.problems import ControlStats
from bridge.control.queue import SpeechQueue
from bridge.eventbus import Event, EventBus
from bridge.session.manager import SessionState
from bridge.sinks.mic import MicState
from bridge.sinks.webcam import CameraState

PREFIX = "heygen_bridge"
LATENCY_BUCKETS_S = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
SESSION_STATES = tuple(str(s) for s in SessionState)
CAMERA_STATES = (*get_args(CameraState), "disabled")
MIC_STATES = (*get_args(MicState), "disabled")
CAMERA_FRAMES = {
    "in": "frames_in",
    "out": "frames_out",
    "dropped": "dropped",
    "repeated": "repeats",
    "slate": "slate_frames",
}
MIC_COUNTERS = ("underruns", "overruns", "late_writes", "dropped_chunks", "reconnects")
FINAL_STATES = ("done", "dropped", "failed")


def _counter(name: str, doc: str, value: Any) -> Iterator[Metric]:
    """A counter family, when the status has the number (a part may be absent: disabled)."""
    if isinstance(value, int | float):
        yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _gauge(name: str, doc: str, value: Any) -> Iterator[Metric]:
    if isinstance(value, int | float):
        yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _state_set(name: str, doc: str, states: Iterable[str], current: Any) -> Iterator[Metric]:
    """One series per possible state, 1 for the current (alerts can test for a state)."""
    if current is None:
        return
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["state"])
    for state in dict.fromkeys([*states, str(current)]):
        family.add_metric([state], 1.0 if state == current else 0.0)
    yield family


class BridgeCollector(Collector):
    """The status-backed part of the metrics, read at each scrape."""

    def __init__(
        self,
        *,
        status: Callable[[], dict[str, Any]],
        queue: SpeechQueue,
        control: ControlStats,
        bus: EventBus,
        reconnects: Callable[[], int],
    ) -> None:
        self._status = status
        self._queue = queue
        self._control = control
        self._bus = bus
        self._reconnects = reconnects

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        info = GaugeMetricFamily(
            f"{PREFIX}_info", "The bridge's version and provider", labels=["version", "provider"]
        )
        info.add_metric([str(status.get("version")), str(status.get("provider"))], 1.0)
        yield info
        yield from self._session(status.get("session") or {}, status.get("source") or {})
        yield from self._camera(status.get("camera") or {})
        yield from self._mic(status.get("microphone") or {})
        yield from self._speech()
        yield from self._api()

    def _session(self, session: dict[str, Any], source: dict[str, Any]) -> Iterator[Metric]:
        yield from _state_set(
            "session_state", "The avatar session's state", SESSION_STATES, session.get("state")
        )
        yield from _gauge(
            "session_seconds_left",
            "Seconds until the provider ends the session by its duration limit",
            session.get("seconds_left"),
        )
        yield from _counter(
            "sessions_opened", "Avatar sessions opened", session.get("sessions_opened")
        )
        yield from _counter(
            "session_reconnects", "Times the session went reconnecting", self._reconnects()
        )
        yield from _counter(
            "source_rejoins", "Times the media source rejoined the room", source.get("rejoins")
        )

    def _camera(self, camera: dict[str, Any]) -> Iterator[Metric]:
        yield from _state_set(
            "camera_state", "The virtual camera's state", CAMERA_STATES, camera.get("state")
        )
        if "frames_in" in camera:
            frames = CounterMetricFamily(
                f"{PREFIX}_camera_frames", "Camera frames by kind", labels=["kind"]
            )
            for kind, key in CAMERA_FRAMES.items():
                frames.add_metric([kind], float(camera.get(key) or 0))
            yield frames
        gap_ms = camera.get("max_gap_ms")
        yield from _gauge(
            "camera_max_gap_seconds",
            "The longest gap between fresh frames",
            gap_ms / 1000 if isinstance(gap_ms, int | float) else None,
        )
        yield from _counter(
            "camera_write_failures", "Camera writes that raised", camera.get("write_failures")
        )

    def _mic(self, mic: dict[str, Any]) -> Iterator[Metric]:
        yield from _state_set(
            "mic_state", "The virtual microphone's state", MIC_STATES, mic.get("state")
        )
        for key in MIC_COUNTERS:
            yield from _counter(f"mic_{key}", f"Microphone {key.replace('_', ' ')}", mic.get(key))
        latency_ms = mic.get("latency_ms")
        yield from _gauge(
            "mic_latency_seconds",
            "From the audio's arrival to the sound server's output",
            latency_ms / 1000 if isinstance(latency_ms, int | float) else None,
        )

    def _speech(self) -> Iterator[Metric]:
        yield from _gauge("speech_queue_depth", "Speech items waiting", self._queue.depth)
        yield from _gauge(
            "speech_speaking", "1 while an item is being spoken", int(self._queue.speaking)
        )
        items = CounterMetricFamily(
            f"{PREFIX}_speech_items", "Speech items finished, by state", labels=["state"]
        )
        for state in dict.fromkeys([*FINAL_STATES, *self._queue.finished]):
            items.add_metric([state], float(self._queue.finished[state]))
        yield items

    def _api(self) -> Iterator[Metric]:
        refusals = CounterMetricFamily(
            f"{PREFIX}_control_refusals", "Control API answers >= 400", labels=["status"]
        )
        for code, n in sorted(self._control.refused.items()):
            refusals.add_metric([str(code)], float(n))
        yield refusals
        yield from _counter(
            "control_errors", "Control API answers 500 (bugs)", self._control.errors
        )
        yield from _counter("events_dropped", "Events slow listeners lost", self._bus.dropped)


class Metrics:
    """The registry of one control app; :meth:`feed` is its ``cleanup_ctx`` (subscribes to
    the bus for the app's life)."""

    def __init__(
        self,
        *,
        status: Callable[[], dict[str, Any]],
        queue: SpeechQueue,
        control: ControlStats,
        bus: EventBus,
    ) -> None:
        self._bus = bus
        self.reconnects = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            f"{PREFIX}_speech_latency_seconds",
            "From a speak request accepted to the avatar speaking it",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(
            BridgeCollector(
                status=status,
                queue=queue,
                control=control,
                bus=bus,
                reconnects=lambda: self.reconnects,
            )
        )

    def on_event(self, event: Event) -> None:
        """Called inside ``bus.emit``: counts, returns at once."""
        if event.topic == "speech.speaking":
            latency = event.data.get("latency_s")
            if isinstance(latency, int | float) and latency >= 0:
                self.latency.observe(latency)
        elif event.topic == "session.state" and event.data.get("state") == "reconnecting":
            self.reconnects += 1

    async def feed(self, app: web.Application) -> AsyncIterator[None]:
        unsubscribe = self._bus.subscribe(self.on_event)
        try:
            yield
        finally:
            unsubscribe()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.scrape)]

    async def scrape(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
        )
