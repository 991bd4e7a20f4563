"""The camera preview (bridge/control/preview.py) over real HTTP: MJPEG frames arrive, one
encoding per tick is shared by every watcher, and encoding stops when nobody watches, when
the encoder fails, and at shutdown.

The camera here is a counter: each encoding is a distinct "JPEG" naming its number, so a
test can tell which encoding a watcher got.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.control.preview import DEFAULT_FPS, MAX_FPS, MIN_FPS, PATH, Preview, requested_fps
from bridge.control.problems import Conflict, ControlStats, problems_middleware
from bridge.errors import BadInput
from tests.kit.eventually import eventually
from tests.kit.mjpeg import MjpegReader

Client = TestClient[Any, Any]


class Camera:
    """``snapshot_jpeg``: the n-th call answers ``JPEG n``; it can be made to refuse."""

    def __init__(self) -> None:
        self.encoded = 0
        self.refusal: Exception | None = None

    async def snapshot_jpeg(self) -> bytes:
        if self.refusal is not None:
            raise self.refusal
        self.encoded += 1
        return b"\xff\xd8JPEG %d\xff\xd9" % self.encoded


@pytest.fixture
def camera() -> Camera:
    return Camera()


@pytest.fixture
async def preview(camera: Camera) -> AsyncIterator[Preview]:
    preview = Preview(camera.snapshot_jpeg)
    yield preview
    await preview.close()


@pytest.fixture
async def client(preview: Preview) -> AsyncIterator[Client]:
    """The preview route behind the API's error boundary, over real HTTP on loopback."""
    app = web.Application(middlewares=[problems_middleware(ControlStats())])
    app.add_routes(preview.routes())
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await preview.close()  # as the daemon does before its server stops
    await client.close()


async def nobody_encodes(preview: Preview) -> None:
    await eventually(
        lambda: preview.watchers == 0 and not preview.encoding,
        within=10,
        what="no watcher and no encoder",
    )


async def test_a_watcher_gets_frames_as_they_are_encoded(
    client: Client, preview: Preview, camera: Camera
) -> None:
    assert camera.encoded == 0 and not preview.encoding  # nobody watches: no work
    async with client.get(PATH, params={"fps": str(MAX_FPS)}) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Preview-FPS"] == f"{MAX_FPS:g}"
        frames = await MjpegReader(response).take(4)
    numbers = [int(frame.split()[1].rstrip(b"\xff\xd9")) for frame in frames]
    assert numbers == sorted(set(numbers)), numbers  # newer and newer encodings, no repeats
    assert all(frame.startswith(b"\xff\xd8") for frame in frames)
    await nobody_encodes(preview)


async def test_two_watchers_share_each_encoding(
    client: Client, preview: Preview, camera: Camera
) -> None:
    fps = {"fps": str(DEFAULT_FPS)}
    async with client.get(PATH, params=fps) as first:
        one = MjpegReader(first)
        seen_by_first = await one.take(1)
        async with client.get(PATH, params=fps) as second:
            seen_by_second = await MjpegReader(second).take(4)
            assert preview.watchers == 2
        # The first watcher got those very encodings too (it reads on until the last one).
        while seen_by_second[-1] not in seen_by_first:
            frame = await one.next()
            assert frame is not None
            seen_by_first.append(frame)
    assert set(seen_by_second) <= set(seen_by_first), (seen_by_first, seen_by_second)
    await nobody_encodes(preview)


async def test_a_watcher_that_leaves_stops_the_encoding(
    client: Client, preview: Preview, camera: Camera
) -> None:
    async with client.get(PATH, params={"fps": str(MAX_FPS)}) as response:
        await MjpegReader(response).take(2)
        assert preview.watchers == 1 and preview.encoding
    # The client hung up (the response closed): the server notices at its next write.
    await nobody_encodes(preview)
    stopped_at = camera.encoded
    # A new watcher starts it again, from a fresh encoding.
    async with client.get(PATH) as response:
        (frame,) = await MjpegReader(response).take(1)
    assert frame == b"\xff\xd8JPEG %d\xff\xd9" % (stopped_at + 1)
    await nobody_encodes(preview)


async def test_shutdown_ends_every_stream_at_once(client: Client, preview: Preview) -> None:
    async with (
        client.get(PATH, params={"fps": str(MIN_FPS)}) as slow,
        client.get(PATH) as other,
    ):
        readers = [MjpegReader(slow), MjpegReader(other)]
        for reader in readers:
            await reader.take(1)
        await preview.close()
        # Both streams end with their closing boundary: no waiting out the next tick.
        async with asyncio.timeout(10):
            assert [await reader.next() for reader in readers] == [None, None]
    assert not preview.encoding
    async with client.get(PATH) as late:
        assert late.status == 503
        assert (await late.json())["error"] == "not_ready"


async def test_a_camera_that_refuses_is_answered_like_the_snapshot(
    client: Client, preview: Preview, camera: Camera
) -> None:
    camera.refusal = Conflict("camera: disabled (camera.enabled: false)")
    async with client.get(PATH) as response:
        assert response.status == 409
        assert await response.json() == {
            "error": "conflict",
            "detail": "camera: disabled (camera.enabled: false)",
        }
    await nobody_encodes(preview)


async def test_a_failing_encoder_ends_the_stream_and_the_next_watcher_starts_afresh(
    client: Client, preview: Preview, camera: Camera
) -> None:
    async with client.get(PATH, params={"fps": str(MAX_FPS)}) as response:
        reader = MjpegReader(response)
        await reader.take(1)
        camera.refusal = Conflict("camera: gone")
        async with asyncio.timeout(10):
            while await reader.next() is not None:  # frames already encoded may still come
                pass
    await nobody_encodes(preview)
    camera.refusal = None
    async with client.get(PATH) as response:
        assert response.status == 200
        await MjpegReader(response).take(1)


@pytest.mark.parametrize(
    ("query", "fps"),
    [({}, DEFAULT_FPS), ({"fps": "2"}, 2.0), ({"fps": "100"}, MAX_FPS), ({"fps": "0.01"}, MIN_FPS)],
)
def test_the_rate_is_the_one_asked_for_within_bounds(query: dict[str, str], fps: float) -> None:
    assert requested_fps(query) == fps


@pytest.mark.parametrize("raw", ["", "abc", "0", "-3", "nan", "inf", "1e999", "5fps"])
def test_a_rate_that_is_no_positive_number_is_refused(raw: str) -> None:
    with pytest.raises(BadInput, match="fps"):
        requested_fps({"fps": raw})


async def test_a_bad_rate_is_a_400_and_starts_nothing(
    client: Client, preview: Preview, camera: Camera
) -> None:
    async with client.get(PATH, params={"fps": "fast"}) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"] == "bad_request" and "fps" in body["detail"]
    assert camera.encoded == 0 and not preview.encoding
