"""``heygen-bridge`` as its own process, with the recording camera backend registered.

    python -m tests.kit.bridge_child --config FILE run

The end-to-end tests run the bridge this way, as users run the daemon: alone in its process,
so its timing is its own and not the test runner's (whose heap and garbage collection would
stall the camera's writer thread).  Frames go to ``$HB_RECORD_DIR`` (tests/kit/camera.py).
"""

from __future__ import annotations

import sys

import pyvirtualcam

from bridge.cli.main import main
from tests.kit.camera import RecordingBackend

if __name__ == "__main__":
    pyvirtualcam.register_backend("recording", RecordingBackend)
    raise SystemExit(main(sys.argv[1:]))
