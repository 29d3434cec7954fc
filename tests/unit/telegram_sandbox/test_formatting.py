"""The sandbox's parse modes (sandbox/formatting.py) on any text: each
either reads it or refuses it in Telegram's words, never fails otherwise;
text escaped for a mode reads back as itself; entities always lie inside
the text, in UTF-16 code units."""
import html
import re

from hypothesis import given
from hypothesis import strategies as st

from sandbox.formatting import PARSERS, ParseError, parse_html, parse_markdown_v2, utf16_length
from sandbox.text import trimmed

PIECES = [*"ab😀 \n<>/&;#x1=\"'_*~|`[]()!\\.-", "<b>", "</b>", "<i>", "</i>", "<a href='x.io'>", "</a>", "&lt;", "```"]
MARKUP = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


def escape_v2(text: str) -> str:
    return re.sub(r"([_*\[\]()~`>#+\-=|{}.!\\])", r"\\\1", text)


@given(st.sampled_from(sorted(PARSERS)), MARKUP)
def test_any_text_is_read_or_refused_in_telegrams_words(mode, source):
    try:
        text, entities = PARSERS[mode](source)
    except ParseError as refused:
        assert str(refused)
        return
    size = utf16_length(text)
    assert all(e["length"] > 0 and 0 <= e["offset"] and e["offset"] + e["length"] <= size for e in entities)


@given(st.text())
def test_text_escaped_for_html_reads_back_as_itself(text):
    assert parse_html(html.escape(text, quote=False)) == (text, [])


@given(st.text(alphabet=st.characters(max_codepoint=126, blacklist_categories=("Cc",)) | st.sampled_from("é😀\n")))
def test_text_escaped_for_markdown_v2_reads_back_as_itself(text):
    assert parse_markdown_v2(escape_v2(text)) == (text, [])


def test_an_entity_after_an_emoji_starts_two_units_later():
    assert parse_html("😀<b>x</b>") == ("😀x", [{"type": "bold", "offset": 2, "length": 1}])


def test_trimming_moves_the_entities_and_drops_those_on_white_space_alone():
    text, entities = parse_html("<i> </i> <b>hi</b> ")
    assert trimmed(text, entities) == ("hi", [{"type": "bold", "offset": 0, "length": 2}])
