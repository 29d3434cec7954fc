"""A message's text as Telegram takes it: read by its parse_mode (HTML,
MarkdownV2, Markdown: sandbox/formatting.py) or taken with the entities
given beside it, trimmed of the white space at both ends, then measured
in UTF-16 code units, the unit of Telegram's limits (4096 for a message,
1024 for a caption) and of every entity's offset and length."""
import dataclasses
import json

from sandbox.answers import Refusal
from sandbox.formatting import PARSERS, SPACE, ParseError, utf16_length

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
UNSUPPORTED_MODE = (400, "Bad Request: unsupported parse_mode")
BAD_ENTITIES = (400, "Bad Request: can't parse entities JSON object")


@dataclasses.dataclass(frozen=True)
class Text:
    text: str
    entities: list[dict]  # MessageEntity objects, offsets in UTF-16 code units


def message_text(params: dict, field: str = "text") -> Text:
    """The `text` (or `caption`) of a send or an edit, as Telegram stores
    it, or its refusal: an empty text, one too long, markup it cannot read."""
    caption = field == "caption"
    raw = params.get(field)
    text, entities = _read("" if raw is None else str(raw), params, "caption_entities" if caption else "entities")
    text, entities = trimmed(text, entities)
    if not text and not caption:
        raise Refusal(400, "Bad Request: message text is empty")
    if utf16_length(text) > (CAPTION_LIMIT if caption else TEXT_LIMIT):
        raise Refusal(400, "Bad Request: message caption is too long" if caption else "Bad Request: message is too long")
    return Text(text, entities)


def _read(raw: str, params: dict, entities_field: str) -> tuple[str, list[dict]]:
    given = params.get(entities_field)
    if given not in (None, ""):  # explicit entities: the parse_mode is not read
        return raw, _given_entities(given, utf16_length(raw))
    mode = params.get("parse_mode", "")
    if mode == "":
        return raw, []
    parse = PARSERS.get(mode.lower()) if isinstance(mode, str) else None
    if parse is None:  # a JSON null included: Telegram knows no such mode
        raise Refusal(*UNSUPPORTED_MODE)
    try:
        return parse(raw)
    except ParseError as error:
        raise Refusal(400, f"Bad Request: can't parse entities: {error}") from None


def _given_entities(value, size: int) -> list[dict]:
    """Entities sent beside the text (JSON text in a form, an array in JSON);
    those that fall outside the text are dropped, as Telegram drops them."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Refusal(*BAD_ENTITIES) from None
    if not isinstance(value, list) or not all(_entity_shape(entity) for entity in value):
        raise Refusal(*BAD_ENTITIES)
    kept = [entity for entity in value if entity["length"] > 0 and 0 <= entity["offset"]
            and entity["offset"] + entity["length"] <= size]
    return sorted(kept, key=lambda e: (e["offset"], -e["length"]))


def _entity_shape(entity) -> bool:
    return (isinstance(entity, dict) and isinstance(entity.get("type"), str)
            and all(isinstance(entity.get(key), int) and not isinstance(entity.get(key), bool)
                    for key in ("offset", "length")))


def trimmed(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """The text without white space at either end, its entities moved and
    cut to what is left (an entity on white space alone goes)."""
    kept = text.strip(SPACE)
    if kept == text:
        return text, entities
    shift = utf16_length(text[:len(text) - len(text.lstrip(SPACE))])
    size = utf16_length(kept)
    moved = []
    for entity in entities:
        begin, end = max(entity["offset"] - shift, 0), min(entity["offset"] + entity["length"] - shift, size)
        if end > begin:
            moved.append({**entity, "offset": begin, "length": end - begin})
    return kept, moved
