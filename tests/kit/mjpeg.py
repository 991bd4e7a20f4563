"""Reading an MJPEG stream (``multipart/x-mixed-replace``) the way a browser's ``<img>`` does:
part by part, each part one JPEG with its ``Content-Length``."""

from __future__ import annotations

import aiohttp


class MjpegReader:
    """The frames of one streaming response, in order."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        kind = response.headers.get("Content-Type", "")
        assert kind.startswith("multipart/x-mixed-replace"), kind
        boundary = kind.partition("boundary=")[2].strip().strip('"')
        assert boundary, f"no boundary in {kind!r}"
        self._response = response
        self._delimiter = f"--{boundary}".encode()

    async def next(self) -> bytes | None:
        """The next frame's JPEG; None once the stream ended (closing boundary or EOF)."""
        content = self._response.content
        line = await content.readline()
        if line.strip() in (b"", self._delimiter + b"--"):
            return None
        assert line.strip() == self._delimiter, f"expected a boundary, got {line[:80]!r}"
        headers: dict[str, str] = {}
        while (line := await content.readline()).strip():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers.get("content-type") == "image/jpeg", headers
        jpeg = await content.readexactly(int(headers["content-length"]))
        assert await content.readexactly(2) == b"\r\n"
        return jpeg

    async def take(self, count: int) -> list[bytes]:
        """The next ``count`` frames; fails if the stream ends first."""
        frames: list[bytes] = []
        for _ in range(count):
            frame = await self.next()
            assert frame is not None, f"the stream ended after {len(frames)} of {count} frames"
            frames.append(frame)
        return frames
