"""Reading what ``pactl`` prints (no server): info, short lists, subscription events."""

from __future__ import annotations

from bridge.devices.pactl import Event, parse_event, parse_info, parse_modules, parse_rows

INFO = """Server String: /run/user/1000/pulse/native
Server Name: PulseAudio (on PipeWire 1.0.5)
Server Version: 15.0.0
Default Sink: speakers
Default Source: n/a
"""


def test_info_names_the_server_and_its_defaults() -> None:
    info = parse_info(INFO)
    assert info.kind == "PipeWire" and info.version == "15.0.0"
    assert info.default_sink == "speakers" and info.default_source is None


def test_short_lists_keep_rows_of_two_columns_or_more() -> None:
    text = "12\tavatar_sink\tmodule-null-sink.c\ts16le 1ch 48000Hz\tIDLE\n\ngarbage\n3\tx\n"
    assert parse_rows(text) == [
        ["12", "avatar_sink", "module-null-sink.c", "s16le 1ch 48000Hz", "IDLE"],
        ["3", "x"],
    ]
    [module] = parse_modules("7\tmodule-null-sink\tsink_name=a rate=48000\n")
    assert module.index == 7 and module.arg("sink_name") == "a" and module.arg("x") is None


def test_subscription_lines_become_events() -> None:
    assert parse_event("Event 'remove' on module #7\n") == Event("remove", "module", 7)
    assert parse_event("Event 'new' on sink-input #42") == Event("new", "sink-input", 42)
    assert parse_event("Event 'change' on server") is None
    assert parse_event("") is None
