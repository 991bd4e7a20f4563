"""``/metrics`` (Prometheus, read back with prometheus_client's own parser) and the probes
``/healthz`` and ``/readyz``, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.providers.events import AvatarEvent
from tests.kit.control_api import TOKEN, Api, Avatar, refusal
from tests.kit.eventually import eventually


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    served = await Api.serve()
    yield served
    await served.close()


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    response = await api.http.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((f"heygen_bridge_{name}", tuple(sorted(labels.items()))))


async def test_metrics_read_the_bridge_at_scrape_time(api: Api) -> None:
    samples = await scrape(api)
    assert value(samples, "info", version="0.1.0", provider="demo") == 1
    assert value(samples, "session_state", state="live") == 1
    assert value(samples, "session_state", state="reconnecting") == 0
    assert value(samples, "session_seconds_left") == 540
    assert value(samples, "sessions_opened_total") == 1
    assert value(samples, "camera_frames_total", kind="in") == 30
    assert value(samples, "camera_frames_total", kind="out") == 31
    assert value(samples, "camera_frames_total", kind="dropped") == 2
    assert value(samples, "camera_state", state="writing") == 1
    assert value(samples, "mic_underruns_total") == 3
    assert value(samples, "mic_latency_seconds") == pytest.approx(0.08)
    assert value(samples, "speech_queue_depth") == 0
    # The next scrape sees what changed since.
    api.status["camera"]["frames_in"] = 90
    api.status["session"]["state"] = "connecting"
    for text in ("one", "two", "three"):
        await api.http.post("/v1/speak", json={"text": text})
    await api.http.delete("/v1/queue/s2")
    samples = await scrape(api)
    assert value(samples, "camera_frames_total", kind="in") == 90
    assert value(samples, "session_state", state="live") == 0
    assert value(samples, "session_state", state="connecting") == 1
    assert value(samples, "speech_queue_depth") == 2
    assert value(samples, "speech_items_total", state="dropped") == 1
    assert value(samples, "speech_items_total", state="done") == 0


async def test_speech_latency_and_reconnects_come_from_the_event_bus(api: Api) -> None:
    for latency in (0.4, 1.2, 7.0):
        api.bus.emit("speech.speaking", id="s1", request_id="r1", item={}, latency_s=latency)
    api.bus.emit("session.state", state="reconnecting", previous="live")
    api.bus.emit("session.state", state="live", previous="reconnecting")
    samples = await scrape(api)
    assert value(samples, "speech_latency_seconds_count") == 3
    assert value(samples, "speech_latency_seconds_sum") == pytest.approx(8.6)
    assert value(samples, "speech_latency_seconds_bucket", le="0.5") == 1
    assert value(samples, "speech_latency_seconds_bucket", le="1.5") == 2
    assert value(samples, "speech_latency_seconds_bucket", le="+Inf") == 3
    assert value(samples, "session_reconnects_total") == 1


async def test_a_spoken_request_shows_in_the_latency_histogram_and_the_final_states(
    api: Api,
) -> None:
    avatar = Avatar()
    runner = asyncio.create_task(api.queue.run(avatar), name="speech-queue")
    try:
        assert (await api.http.post("/v1/speak", json={"text": "Hello."})).status == 202
        await eventually(lambda: avatar.tasks == 1, what="the item sent")
        api.queue.on_event(AvatarEvent("speak_started", task_id="task-1"))
        api.queue.on_event(AvatarEvent("speak_ended", task_id="task-1"))
        samples = await scrape(api)
        assert value(samples, "speech_latency_seconds_count") == 1
        assert value(samples, "speech_items_total", state="done") == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_refusals_and_bugs_are_counted(api: Api) -> None:
    await api.http.post("/v1/speak", data=b"{nope")
    await api.http.get("/v1/nope")
    await api.http.get("/v1/nope")
    api.status = {"session": "broken"}
    assert (await api.http.get("/v1/state")).status == 500
    api.status = {}
    samples = await scrape(api)
    assert value(samples, "control_refusals_total", status="400") == 1
    assert value(samples, "control_refusals_total", status="404") == 2
    assert value(samples, "control_errors_total") == 1


async def test_a_disabled_camera_and_mic_still_scrape(api: Api) -> None:
    api.status = {
        "provider": "demo",
        "camera": {"state": "disabled"},
        "microphone": {"state": "disabled"},
    }
    samples = await scrape(api)
    assert value(samples, "camera_state", state="disabled") == 1
    assert value(samples, "camera_frames_total", kind="in") is None
    assert value(samples, "mic_state", state="disabled") == 1


async def test_metrics_need_the_token_on_a_guarded_api() -> None:
    api = await Api.serve(host="0.0.0.0", token=TOKEN)
    try:
        assert (await api.http.get("/metrics")).status == 401
        ok = await api.http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status == 200
    finally:
        await api.close()


# --- probes ------------------------------------------------------------------------------------


async def test_healthz_answers_whatever_the_session_does(api: Api) -> None:
    api.status = {"session": "whatever status() would make of it"}  # reading it would fail
    response = await api.http.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


@pytest.mark.parametrize(
    ("session", "camera", "waiting"),
    [
        ("connecting", "writing", ["session: connecting"]),
        ("failed", "starting", ["session: failed", "camera: starting"]),
        ("live", "unavailable", ["camera: unavailable"]),
        ("reconnecting", "disabled", ["session: reconnecting"]),
    ],
)
async def test_readyz_is_503_naming_what_is_not_ready(
    api: Api, session: str, camera: str, waiting: list[str]
) -> None:
    api.status = {"session": {"state": session}, "camera": {"state": camera}}
    status, error, detail = await refusal(await api.http.get("/readyz"))
    assert (status, error) == (503, "not_ready")
    assert [part.split(" (")[0] for part in detail.split("; ")] == waiting


@pytest.mark.parametrize("camera", ["writing", "disabled"])
async def test_readyz_is_200_with_a_live_session_and_a_writing_or_disabled_camera(
    api: Api, camera: str
) -> None:
    api.status = {"session": {"state": "live"}, "camera": {"state": camera}}
    response = await api.http.get("/readyz")
    assert response.status == 200 and (await response.json())["ready"] is True


async def test_the_probes_need_no_token() -> None:
    api = await Api.serve(host="0.0.0.0", token=TOKEN)
    try:
        assert (await api.http.get("/healthz")).status == 200
        assert (await api.http.get("/readyz")).status == 200
    finally:
        await api.close()
