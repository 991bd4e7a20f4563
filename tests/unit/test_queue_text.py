"""What a speak request's text becomes: cleaned and checked, then cut where a listener would
pause (sentence ends, then spaces, then hard at the provider's limit)."""

from __future__ import annotations

import random
import unicodedata

import pytest

from bridge.control.text import choice, normalise, split
from bridge.errors import BadInput


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("  Hello there.  ", "Hello there."),
        ("Cafe\u0301", "Café"),  # a combining accent becomes one letter (NFC)
        ("bell\x07 and NUL\x00 gone", "bell and NUL gone"),
        ("C1 \x85control\x9f gone", "C1 control gone"),
        ("DEL\x7f gone", "DEL gone"),
        ("one\r\ntwo\rthree\nfour\tfive", "one\ntwo\nthree\nfour\tfive"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # the escape goes; the rest is just text
        ("emoji 👋 stay", "emoji 👋 stay"),
    ],
)
def test_text_is_normalised_before_it_is_spoken(raw: str, spoken: str) -> None:
    assert normalise(raw, max_text=100) == spoken


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (None, "text: must be a string"),
        (42, "text: must be a string"),
        (["hi"], "text: must be a string"),
        ("", "text: is empty"),
        ("   \n\t  ", "text: is empty"),
        ("\x00\x01\x02", "text: is empty"),  # nothing left once control characters go
        ("ok \ud800 no", "text: contains a lone surrogate (U+D800 at character 3)"),
        ("\udfff", "text: contains a lone surrogate (U+DFFF at character 0)"),
        ("x" * 11, "text: is 11 characters; at most 10 per request"),
    ],
)
def test_text_that_cannot_be_spoken_is_refused_naming_why(raw: object, detail: str) -> None:
    with pytest.raises(BadInput) as refused:
        normalise(raw, max_text=10)
    assert refused.value.field == "text"
    assert str(refused.value).startswith(detail)


def test_the_length_limit_counts_what_would_be_spoken() -> None:
    assert normalise("  " + "x" * 10 + "\x00\x00  ", max_text=10) == "x" * 10
    assert normalise("e\u0301" * 10, max_text=10) == "é" * 10  # 20 code points in, 10 out


def test_a_choice_must_be_one_of_the_options() -> None:
    assert choice("chat", "mode", ("repeat", "chat")) == "chat"
    for wrong in ("Chat", "", None, 1, ["chat"]):
        with pytest.raises(BadInput, match=r"^mode: .* is not one of repeat, chat$"):
            choice(wrong, "mode", ("repeat", "chat"))


def test_a_text_within_the_limit_stays_whole() -> None:
    assert split("One. Two.", 9) == ["One. Two."]


def test_a_long_text_is_cut_after_the_last_sentence_that_fits() -> None:
    text = "First one here. Second one! Third one? And the fourth."
    assert split(text, 30) == ["First one here. Second one!", "Third one? And the fourth."]


def test_sentence_ends_count_with_closing_quotes_and_line_breaks() -> None:
    assert split('He said "stop." Then left.', 20) == ['He said "stop."', "Then left."]
    assert split("a list\nof lines that go on", 15) == ["a list", "of lines that", "go on"]


def test_cjk_full_stops_end_sentences_without_a_space() -> None:
    assert split("今日は晴れです。明日は雨です。", 10) == ["今日は晴れです。", "明日は雨です。"]


def test_without_a_sentence_end_the_cut_is_at_a_space() -> None:
    assert split("no full stop in this long line at all", 16) == [
        "no full stop in",
        "this long line",
        "at all",
    ]


def test_an_abbreviation_is_no_better_than_a_space_but_no_worse() -> None:
    pieces = split("See e.g. this one and that one.", 12)
    assert all(len(p) <= 12 for p in pieces)
    assert " ".join(pieces) == "See e.g. this one and that one."


def test_one_enormous_word_is_cut_hard_at_the_limit() -> None:
    assert split("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_hard_cut_keeps_a_combining_mark_with_its_letter() -> None:
    # Letters NFC cannot compose with this mark, so the mark stays a code point of its own.
    word = "q\u0323" * 6
    pieces = split(word, 5)
    assert "".join(pieces) == word
    assert all(not unicodedata.combining(p[0]) for p in pieces)
    assert all(len(p) <= 5 for p in pieces)


def test_pieces_fit_and_say_the_whole_text_in_order() -> None:
    """Random texts of words, sentence ends, long words and line breaks."""
    rng = random.Random(10)
    alphabet = ["word", "a", "sentence.", "end!", "why?", "x" * 37, "\n", "é", "“quoted.”"]
    for _ in range(500):
        text = "word " + " ".join(rng.choices(alphabet, k=rng.randint(1, 60)))
        limit = rng.randint(1, 50)
        pieces = split(text, limit)
        assert all(0 < len(p) <= limit for p in pieces), (text, limit, pieces)
        assert all(p == p.strip() for p in pieces)
        assert "".join("".join(pieces).split()) == "".join(text.split())  # nothing lost
