"""``heygen-bridge status``'s summary, and where the remote commands look for the daemon."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.cli.remote import RemoteError, check_url, config_url
from bridge.cli.summary import summary
from bridge.config import ControlConfig

STATUS: dict[str, Any] = {
    "version": "0.1.0",
    "provider": "LiveAvatar",
    "session": {"state": "live", "session_id": "3f2a", "seconds_left": 287, "last_error": None},
    "camera": {"state": "writing", "device": "/dev/video10", "showing": "avatar",
               "frames_out": 1234, "dropped": 2, "last_error": None, "fix": None},
    "microphone": {"state": "speaking", "source": "heygen_avatar_mic", "underruns": 0},
    "speech": {
        "pending": 2,
        "current": {"id": "s3", "state": "speaking", "text": "Hello there", "mode": "repeat"},
        "queue": [
            {"id": "s3", "state": "speaking", "text": "Hello there", "mode": "repeat"},
            {"id": "s4", "state": "queued", "text": "What is new?", "mode": "chat"},
            {"id": "s5", "state": "queued", "text": "word " * 40, "mode": "repeat"},
        ],
    },
}  # fmt: skip


def test_the_summary_names_each_part_a_user_asks_about() -> None:
    lines = summary(STATUS, "http://127.0.0.1:8765")
    assert lines == [
        "heygen-bridge 0.1.0 at http://127.0.0.1:8765",
        "  provider    LiveAvatar",
        "  session     live, session 3f2a, 287 s left",
        "  camera      writing /dev/video10, showing avatar, 1234 frames out, 2 dropped",
        "  microphone  speaking into heygen_avatar_mic, 0 underruns",
        '  queue       s3 speaking "Hello there", 2 waiting',
        '                next: s4 queued "What is new?" (chat)',
        '                next: s5 queued "word word word word word word word word word wo…"',
    ]


def test_troubles_and_disabled_parts_say_why() -> None:
    status = {
        **STATUS,
        "session": {"state": "failed", "session_id": None, "last_error": "code 10007: limit"},
        "camera": {"state": "unavailable", "fix": "sudo modprobe v4l2loopback"},
        "microphone": {"state": "disabled"},
        "speech": {"pending": 0, "current": None, "queue": []},
    }
    lines = summary(status, "http://x")
    assert lines[2] == "  session     failed (last error: code 10007: limit)"
    assert lines[3] == "  camera      unavailable (fix: sudo modprobe v4l2loopback)"
    assert lines[4] == "  microphone  disabled (microphone.enabled: false)"
    assert lines[5] == "  queue       nothing being spoken, 0 waiting"


@pytest.mark.parametrize(
    "status",
    [{}, {"session": "live", "camera": None, "speech": {"queue": "x", "current": 3}}],
    ids=["empty", "wrong-types"],
)
def test_a_status_of_another_shape_reads_as_unknown_and_never_raises(
    status: dict[str, Any],
) -> None:
    lines = summary(status, "http://x")
    assert lines[0] == "heygen-bridge ? at http://x"
    assert lines[1:] == [
        "  provider    ?",
        "  session     ?",
        "  camera      ?",
        "  microphone  ?",
        "  queue       nothing being spoken, ? waiting",
    ]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8765"),
        ("0.0.0.0", "http://127.0.0.1:8765"),
        ("", "http://127.0.0.1:8765"),
        ("::", "http://[::1]:8765"),
        ("::1", "http://[::1]:8765"),
        ("localhost", "http://localhost:8765"),
        ("192.168.1.20", "http://192.168.1.20:8765"),
    ],
)
def test_the_daemon_is_reached_where_it_binds_and_wildcards_over_loopback(
    host: str, url: str
) -> None:
    assert config_url(ControlConfig(host=host)) == url


def test_a_port_the_daemon_picks_cannot_be_guessed() -> None:
    with pytest.raises(RemoteError, match="--url") as caught:
        config_url(ControlConfig(port=0))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://bridge.example:8443/v1/status", "https://bridge.example:8443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_url_option_keeps_scheme_host_and_port(given: str, url: str) -> None:
    assert check_url(given) == url


@pytest.mark.parametrize(
    "given", ["127.0.0.1:8765", "ftp://host:21", "http://", "http://host:99999", "http://h:x"]
)
def test_a_url_that_is_no_address_is_bad_usage(given: str) -> None:
    with pytest.raises(RemoteError, match="--url") as caught:
        check_url(given)
    assert caught.value.exit_code == 2
