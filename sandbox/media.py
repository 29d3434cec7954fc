"""sendPhoto's photo, taken as Telegram takes it: an HTTP(S) URL Telegram
fetches, or the file_id of a photo it sent before. The sandbox fetches
nothing: a URL of the right form is an image, unless the control API marked
it unreachable (POST /sandbox/media/unreachable), which Telegram words as
"failed to get HTTP URL content". Uploads are refused before this (the
sandbox takes none)."""
import base64
import binascii
import re
from urllib.parse import urlsplit

from sandbox.answers import Refusal
from sandbox.store import Store

NO_PHOTO = (400, "Bad Request: there is no photo in the request")
WRONG_FILE = (400, "Bad Request: wrong file identifier/HTTP URL specified")
UNREACHABLE = (400, "Bad Request: failed to get HTTP URL content")
URL_MAX = 2048
# A photo's file_id: Telegram's look (base64url, "AgAC..." for photos) over
# the chat and message it was sent in, so the sandbox knows its own ids.
FILE_ID_PREFIX = "AgACAgQ"
FILE_ID_BODY = re.compile(r"sandbox:(-?\d{1,20}):(\d{1,20})")


def file_id(chat_id: int, message_id: int) -> str:
    """The file_id of the photo of message `message_id` in chat `chat_id`."""
    body = base64.urlsafe_b64encode(f"sandbox:{chat_id}:{message_id}".encode()).decode().rstrip("=")
    return FILE_ID_PREFIX + body


def http_url(value: str) -> bool:
    """An absolute http(s) URL with a host and nothing a URL cannot hold."""
    if len(value) > URL_MAX or any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 address
        return False


def photo_url(store: Store, photo) -> str:
    """The URL of the image `photo` names (a URL, or the file_id of a photo
    the sandbox sent), or Telegram's refusal."""
    if not isinstance(photo, str) or not photo.strip():
        raise Refusal(*NO_PHOTO)
    photo = photo.strip()
    if http_url(photo):
        if store.unreachable(photo):
            raise Refusal(*UNREACHABLE)
        return photo
    sent = _sent_photo(store, photo)
    if sent is None:
        raise Refusal(*WRONG_FILE)
    return sent


def _sent_photo(store: Store, value: str) -> str | None:
    """The URL of the photo a sandbox file_id names; None if it names none."""
    if not value.startswith(FILE_ID_PREFIX):
        return None
    body = value[len(FILE_ID_PREFIX):]
    try:
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    match = FILE_ID_BODY.fullmatch(decoded)
    if not match:
        return None
    post = store.post(int(match.group(1)), int(match.group(2)))
    return post.media_url if post is not None and post.photo and post.media_url else None
