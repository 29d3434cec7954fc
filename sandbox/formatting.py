"""Telegram's three parse modes, read as the Bot API reads them: HTML,
MarkdownV2 and the legacy Markdown become plain text and its entities
(offsets and lengths in UTF-16 code units, as Telegram counts them), or a
ParseError in Telegram's words, with the byte offset (UTF-8) where it
went wrong: "Unsupported start tag \"p\" at byte offset 0". The caller puts
"Bad Request: can't parse entities: " before it.

What is left out: a link to a user (tg://user?id=...) never becomes a
text_mention, and links are checked loosely (a scheme is added when none
is given; one without a dot in its host is dropped, as Telegram drops
links it cannot open)."""
import re
from urllib.parse import urlsplit

HTML_TAGS = ("a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "span",
             "pre", "code", "blockquote")
HTML_KINDS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
              "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
              "span": "spoiler"}
HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
V2_RESERVED = "_*[]()~`>#+-=|{}.!\n"
# How Telegram names an entity in "Can't find end of Bold entity at byte offset N".
V2_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline", "strikethrough": "Strikethrough",
            "spoiler": "Spoiler", "code": "Code", "pre": "Pre", "text_link": "TextUrl", "custom_emoji": "CustomEmoji",
            "blockquote": "BlockQuote"}
EMOJI_URL = re.compile(r"tg://emoji\?id=([1-9][0-9]{0,18})")
SPACE = " \t\r\n\v\f"


class ParseError(Exception):
    """Markup Telegram cannot read; the message is Telegram's."""


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8", "surrogatepass"))


def _at(source: str, index: int) -> str:
    """The character at `index`, or "" past the end (the parsers look ahead)."""
    return source[index] if index < len(source) else ""


def _entity(kind: str, offset: int, length: int, argument: str = "") -> dict:
    found = {"type": kind, "offset": offset, "length": length}
    if kind == "text_link":
        found["url"] = argument
    elif kind == "pre" and argument:
        found["language"] = argument
    elif kind == "custom_emoji":
        found["custom_emoji_id"] = argument
    return found


def _sorted(entities: list[dict]) -> list[dict]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def checked_link(url: str) -> str | None:
    """The link Telegram would keep for a text_link, or None when it drops it."""
    url = url.strip()
    if not url or any(char in SPACE for char in url):
        return None
    if re.match(r"(?i)(tg|ton)://", url):
        return url
    if not re.match(r"(?i)https?://", url):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None
    return url if "." in host.strip(".") else None


class _Output:
    """The plain text being built, with its length in UTF-16 code units."""

    def __init__(self):
        self.parts: list[str] = []
        self.units = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.units += sum(_units(char) for char in text)

    def since(self, index: int) -> str:
        return "".join(self.parts[index:])

    def text(self) -> str:
        return "".join(self.parts)


# ---- HTML ----------------------------------------------------------------
def _html_entity(source: str, index: int) -> tuple[str | None, int]:
    """The character an &...; reference at `index` stands for and where
    reading goes on; (None, index) when it is no reference Telegram knows."""
    end = index + 1
    if _at(source, end) == "#":
        end += 1
        base, digits = (16, "0123456789abcdefABCDEF") if _at(source, end) == "x" else (10, "0123456789")
        end += base == 16
        start = end
        while _at(source, end) and _at(source, end) in digits:
            end += 1
        code = int(source[start:end], base) if end > start else 0
        if code == 0 or code >= 0x10FFFF or end - index >= 10:
            return None, index
        char = chr(code)
    else:
        while _at(source, end).isascii() and _at(source, end).isalpha():
            end += 1
        char = HTML_NAMED.get(source[index + 1:end])
        if char is None:
            return None, index
    return char, end + (_at(source, end) == ";")


def parse_html(source: str) -> tuple[str, list[dict]]:
    out, entities, stack = _Output(), [], []  # stack: (tag, argument, offset, start part)
    i, size = 0, len(source)
    while i < size:
        char = source[i]
        if char == "&":
            decoded, after = _html_entity(source, i)
            if decoded is not None:
                if 0xD800 <= ord(decoded) <= 0xDFFF:
                    raise ParseError("Text contains invalid Unicode characters after decoding HTML entities, check"
                                     " for unmatched surrogate code units")
                out.add(decoded)
                i = after
                continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        begin = _byte_offset(source, i)
        if _at(source, i + 1) == "/":
            i = _html_end_tag(source, i, begin, out, entities, stack)
        else:
            i, tag, argument = _html_start_tag(source, i, begin)
            stack.append((tag, argument, out.units, len(out.parts)))
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        entity.pop("_language", None)  # a code's language, kept for a <pre> around it
    return out.text(), _sorted(entities)


def _html_start_tag(source: str, i: int, begin: int) -> tuple[int, str, str]:
    """Reads `<tag attr="...">` from `i`: (where reading goes on, tag, argument)."""
    size = len(source)
    j = i + 1
    while j < size and source[j] not in SPACE and source[j] != ">":
        j += 1
    if j >= size:
        raise ParseError(f"Unclosed start tag at byte offset {begin}")
    tag = source[i + 1:j].lower()
    if tag not in HTML_TAGS:
        raise ParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    argument = ""
    while True:
        while j < size and source[j] in SPACE:
            j += 1
        if j >= size:
            raise ParseError(f"Unclosed start tag at byte offset {begin}")
        if source[j] == ">":
            break
        name_start = j
        while j < size and source[j] not in SPACE and source[j] not in "=>":
            j += 1
        name = source[name_start:j]
        if not name:
            raise ParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while j < size and source[j] in SPACE:
            j += 1
        if tag == "blockquote" and name == "expandable" and _at(source, j) != "=":
            argument = "expandable"
            continue
        if _at(source, j) != "=":
            raise ParseError(f'Expected equal sign in declaration of an attribute of the tag "{tag}" at byte offset'
                             f" {begin}")
        j += 1
        while j < size and source[j] in SPACE:
            j += 1
        if j >= size:
            raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        if source[j] in "'\"":
            quote, j = source[j], j + 1
            value = []
            while j < size and source[j] != quote:
                decoded, after = _html_entity(source, j) if source[j] == "&" else (None, j)
                value.append(decoded if decoded is not None else source[j])
                j = after if decoded is not None else j + 1
            j += j < size
            value = "".join(value)
        else:
            token_start = j
            while j < size and (source[j].isascii() and source[j].isalnum() or source[j] in ".-"):
                j += 1
            value = source[token_start:j].lower()
            if j < size and source[j] not in SPACE and source[j] != ">":
                raise ParseError(f"Unexpected end of name token at byte offset {_byte_offset(source, token_start)}")
        if j >= size:
            raise ParseError(f"Unclosed start tag at byte offset {begin}")
        if (tag, name) == ("a", "href") or (tag, name) == ("tg-emoji", "emoji-id"):
            argument = value
        elif (tag, name) == ("code", "class") and value.startswith("language-"):
            argument = value[len("language-"):]
        elif (tag, name) == ("span", "class") and value.startswith("tg-"):
            argument = value[len("tg-"):]
    if tag == "span" and argument != "spoiler":
        raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    return j + 1, tag, argument


def _html_end_tag(source: str, i: int, begin: int, out: _Output, entities: list, stack: list) -> int:
    """Reads `</tag>` from `i`, closing the innermost open tag; where reading goes on."""
    if not stack:
        raise ParseError(f"Unexpected end tag at byte offset {begin}")
    size = len(source)
    j = i + 2
    while j < size and source[j] not in SPACE and source[j] != ">":
        j += 1
    name = source[i + 2:j].lower()
    while j < size and source[j] in SPACE:
        j += 1
    if j >= size or source[j] != ">":
        raise ParseError(f"Unclosed end tag at byte offset {begin}")
    tag, argument, offset, start = stack.pop()
    if name and name != tag:
        raise ParseError(f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", found "</{name}>"')
    length = out.units - offset
    if length > 0:
        last = entities[-1] if entities else None
        same_span = last is not None and (last["offset"], last["length"]) == (offset, length)
        if tag in HTML_KINDS:
            entities.append(_entity(HTML_KINDS[tag], offset, length))
        elif tag == "blockquote":
            entities.append(_entity("expandable_blockquote" if argument else "blockquote", offset, length))
        elif tag == "tg-emoji":
            if not argument.isdigit() or int(argument) == 0:
                raise ParseError("Invalid custom emoji identifier specified")
            entities.append(_entity("custom_emoji", offset, length, argument))
        elif tag == "a":
            url = checked_link(argument or out.since(start))
            if url:
                entities.append(_entity("text_link", offset, length, url))
        elif tag == "pre" and same_span and last["type"] == "code" and last.get("_language"):
            entities[-1] = _entity("pre", offset, length, last["_language"])  # <pre><code class="language-x">
        elif tag == "pre":
            entities.append(_entity("pre", offset, length))
        elif tag == "code" and same_span and last["type"] == "pre" and argument:
            entities[-1] = _entity("pre", offset, length, argument)  # <code class="language-x"><pre>
        else:  # code; its language counts only inside a pre
            entities.append({**_entity("code", offset, length), **({"_language": argument} if argument else {})})
    return j + 1


# ---- MarkdownV2 ------------------------------------------------------------
def _reserved(char: str) -> ParseError:
    return ParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")


def _escapable(char: str) -> bool:
    return char != "" and 0 < ord(char) <= 126


def _v2_name(kind: str, argument: str) -> str:
    return "PreCode" if kind == "pre" and argument else V2_NAMES[kind]


def _v2_ends(source: str, i: int, kind: str) -> bool:
    char, following = source[i], _at(source, i + 1)
    return {"bold": char == "*", "italic": char == "_" and following != "_", "code": char == "`",
            "pre": source[i:i + 3] == "```", "text_link": char == "]", "underline": source[i:i + 2] == "__",
            "strikethrough": char == "~", "spoiler": source[i:i + 2] == "||", "custom_emoji": char == "]",
            "blockquote": False}[kind]


def _v2_url(source: str, i: int) -> tuple[str, int]:
    """The URL of `(...)` whose first character is at `i`, unescaped: (url, index of its ')')."""
    url = []
    while i < len(source) and source[i] != ")":
        if source[i] == "\\" and _escapable(_at(source, i + 1)):
            url.append(source[i + 1])
            i += 2
            continue
        url.append(source[i])
        i += 1
    return "".join(url), i


def parse_markdown_v2(source: str) -> tuple[str, list[dict]]:
    out, entities, stack = _Output(), [], []  # stack: [kind, argument, offset, byte offset, start part]
    quote = False  # inside a > block quote
    i, size = 0, len(source)
    while i < size:
        char = source[i]
        if char == "\\" and _escapable(_at(source, i + 1)):
            out.add(source[i + 1])
            i += 2
            continue
        reserved = "`" if stack and stack[-1][0] in ("code", "pre") else V2_RESERVED
        if char not in reserved:
            out.add(char)
            i += 1
            continue
        ending = bool(stack) and ((quote and char == "\n" and _at(source, i + 1) != ">")
                                  or _v2_ends(source, i, stack[-1][0]))
        if not ending:
            kind, argument, begin = None, "", _byte_offset(source, i)
            if char == "_":
                kind = "underline" if _at(source, i + 1) == "_" else "italic"
                i += kind == "underline"
            elif char in "*~[":
                kind = {"*": "bold", "~": "strikethrough", "[": "text_link"}[char]
            elif char == "|" and _at(source, i + 1) == "|":
                kind, i = "spoiler", i + 1
            elif char == "!" and _at(source, i + 1) == "[":
                kind, i = "custom_emoji", i + 1
            elif char == "`" and source[i:i + 3] == "```":
                kind, i = "pre", i + 3
                end = i
                while end < size and source[end] not in SPACE and source[end] != "`":
                    end += 1
                if end != i and end < size and source[end] != "`":
                    argument, i = source[i:end], end
                if _at(source, i) in ("\n", "\r"):  # one line break after the language is not text
                    pair = _at(source, i + 1) in ("\n", "\r") and _at(source, i + 1) != source[i]
                    i += 2 if pair else 1
                i -= 1
            elif char == "`":
                kind = "code"
            elif char == "\n":
                out.add("\n")
                if _at(source, i + 1) == ">":
                    i += 1
                    if not quote:
                        kind, quote = "blockquote", True
            elif char == ">" and i == 0:
                kind, quote = "blockquote", True
            else:
                raise _reserved(char)
            if kind:
                stack.append([kind, argument, out.units, begin, len(out.parts)])
            i += 1
            continue
        kind, argument, offset, begin, start = stack[-1]
        if char == "\n" and kind != "blockquote":
            raise ParseError(f"Can't find end of {_v2_name(kind, argument)} entity at byte offset {begin}")
        skip = out.units == offset
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind == "pre":
            i += 2
        elif kind == "text_link":
            url = out.since(start)
            if _at(source, i + 1) == "(":
                url_start = i + 2
                url, i = _v2_url(source, url_start)
                if i >= size:
                    raise ParseError(f"Can't find end of a URL at byte offset {_byte_offset(source, url_start)}")
            argument = checked_link(url) or ""
            skip = skip or not argument
        elif kind == "custom_emoji":
            if _at(source, i + 1) != "(":
                raise ParseError("Custom emoji entity must contain a tg://emoji URL")
            url_start = i + 2
            url, i = _v2_url(source, url_start)
            if i >= size:
                raise ParseError(f"Can't find end of a custom emoji URL at byte offset"
                                 f" {_byte_offset(source, url_start)}")
            emoji = EMOJI_URL.fullmatch(url)
            if not emoji:
                raise ParseError("Invalid custom emoji identifier specified")
            argument = emoji.group(1)
        if not skip:
            entities.append(_entity(kind, offset, out.units - offset, argument))
        if kind == "blockquote":
            quote = False
            out.add("\n")
        stack.pop()
        i += 1
    if quote and stack and stack[-1][0] == "blockquote":
        kind, argument, offset, _, _ = stack.pop()
        if out.units > offset:
            entities.append(_entity(kind, offset, out.units - offset))
    if stack:
        kind, argument, _, begin, _ = stack[-1]
        raise ParseError(f"Can't find end of {_v2_name(kind, argument)} entity at byte offset {begin}")
    return out.text(), _sorted(entities)


# ---- Markdown (legacy) -----------------------------------------------------
def parse_markdown(source: str) -> tuple[str, list[dict]]:
    out, entities = _Output(), []
    i, size = 0, len(source)
    while i < size:
        char = source[i]
        if char == "\\" and _at(source, i + 1) in ("_", "*", "`", "["):
            out.add(source[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.add(char)
            i += 1
            continue
        begin, end_char, pre, language = i, "]" if char == "[" else char, False, ""
        i += 1
        if char == "`" and source[i:i + 2] == "``":
            i, pre = i + 2, True
            end = i
            while end < size and source[end] not in SPACE and source[end] != "`":
                end += 1
            if end != i and end < size and source[end] != "`":
                language, i = source[i:end], end
            if _at(source, i) in ("\n", "\r"):
                pair = _at(source, i + 1) in ("\n", "\r") and _at(source, i + 1) != source[i]
                i += 2 if pair else 1
        offset = out.units
        while i < size and (source[i] != end_char or (pre and source[i + 1:i + 3] != "``")):
            out.add(source[i])
            i += 1
        if i >= size:
            raise ParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(source, begin)}")
        length = out.units - offset
        if char == "[":
            url = source[begin + 1:i]
            if _at(source, i + 1) == "(":
                close = source.find(")", i + 2)
                close = size if close < 0 else close
                url, i = source[i + 2:close], close
            url = checked_link(url)
            if length and url:
                entities.append(_entity("text_link", offset, length, url))
        elif length:
            kind = {"_": "italic", "*": "bold"}.get(char) or ("pre" if pre else "code")
            entities.append(_entity(kind, offset, length, language))
        i += 3 if pre else 1
    return out.text(), _sorted(entities)


PARSERS = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}
