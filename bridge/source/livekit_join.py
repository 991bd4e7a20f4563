"""Joining and leaving a LiveKit room without ever cutting the SDK's connect in half.

The ``livekit`` SDK's ``Room.connect()`` asks its native side to connect, awaits the answer,
and then tells it that Python is ready for the room's events (``ReadyForRoomEventRequest``).
A connect cancelled in between never sends that: 15 s later the native side logs "timed out
waiting for ReadyForRoomEventRequest after ConnectCallback" and panics, and the SDK ends the
whole process (a SIGTERM to itself).  So every room the bridge or the simulator joins is
joined with :func:`connect` and left with :func:`disconnect`.

The contract, seen from a caller that is cancelled while connecting: it **waits a bounded
time**.  The connect runs on to its end in a task of its own (the SDK bounds it:
``CONNECT_TIMEOUT_S`` per signal attempt, and its own timeout for the media connection; a few
hundred ms on loopback), the room it joined is left at once, and then the cancellation is
raised.  Every cancel that arrives meanwhile is held until then, never swallowed, as
:func:`bridge.cleanup.finish_despite_cancel` does for other clean-up; a forced stop
(supervisor.py) is the way out of an SDK that hangs.
"""

from __future__ import annotations

import asyncio

from livekit import rtc

from bridge.cleanup import finish_despite_cancel, outlast

# Seconds the SDK gives each attempt at the signal connection (its default, made explicit:
# the bound on how long a cancelled caller of :func:`connect` waits).
CONNECT_TIMEOUT_S = 5.0


def room_options() -> rtc.RoomOptions:
    """The options every join uses (the SDK's defaults, with the connect timeout explicit)."""
    return rtc.RoomOptions(connect_timeout=CONNECT_TIMEOUT_S)


async def connect(room: rtc.Room, url: str, token: str, *, name: str) -> None:
    """``room.connect(url, token)``, never cancelled mid-flight (see the module's contract).

    ``rtc.ConnectError`` when the room cannot be joined.  Cancelled meanwhile: the connect
    ends first, a room joined after all is left, then ``CancelledError`` is raised (chained
    to the connect's own error, if it failed).
    """
    connecting, cancelled = await outlast(room.connect(url, token, room_options()), name=name)
    if not cancelled:
        connecting.result()  # rtc.ConnectError, as the caller expects
        return
    failed = None if connecting.cancelled() else connecting.exception()
    if failed is None:  # joined after all: leave again before the cancellation goes on
        try:
            await disconnect(room, name=f"{name}-back-out")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the cancellation still goes on, with what failed
            raise asyncio.CancelledError from exc
    raise asyncio.CancelledError from failed


async def disconnect(room: rtc.Room, *, name: str) -> None:
    """``room.disconnect()`` (nothing when not connected), run to its end even if the caller
    is cancelled meanwhile; then the cancellation goes on."""
    await finish_despite_cancel(room.disconnect(), name=name)
