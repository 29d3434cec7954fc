"""A local stand-in for the Telegram Bot API: the methods the channel adapter
(services/campaigns/telegram.py) calls, its own storage, a page listing each
channel's posts with a delete button, and a control API for people and
tests. Run it with `python -m sandbox` (docs/sandbox.md).

The Bot API, at /bot<token>/<method> (GET or POST; the query string, a JSON
body or a urlencoded form as python-telegram-bot sends it): getMe, getChat,
getChatMember, getChatAdministrators, sendMessage, sendPhoto (photo by URL),
editMessageReplyMarkup, deleteMessage, logOut, close. Answers are
Telegram's: {"ok": true, "result": ...} or {"ok": false, "error_code": N,
"description": "...", "parameters": {"retry_after": N}} with the same HTTP
status. Only the configured token is accepted (401 Unauthorized otherwise);
an unknown method is 404 Not Found.

Channels: any @handle is a channel that exists, with the bot an
administrator that can post, unless told to refuse. Its chat id is stable
(-100 and ten digits from a hash of the handle) and its message ids count up
from 1. Refusals, as Telegram words them:
  not_found  every call naming the chat: 400 "Bad Request: chat not found"
  not_admin  getChatMember says the bot has left; posting, editing and
             deleting: 400 "Bad Request: need administrator rights in the
             channel chat"
  blocked    every call naming the chat: 403 "Forbidden: bot was kicked
             from the channel chat"
editMessageReplyMarkup without buttons on a live post answers 400 "message
is not modified" (the adapter's proof probe); on a deleted one 400 "message
to edit not found".

Control API (JSON; no credentials: it listens on 127.0.0.1 by default):
  GET    /sandbox/channels                              every channel with its posts
  GET    /sandbox/channels/{handle}                     one channel with its posts
  GET    /sandbox/channels/{handle}/posts               its posts, newest first:
         message_id, text, media_url, photo, date, deleted, deleted_at (unix seconds)
  DELETE /sandbox/channels/{handle}/posts/{message_id}  delete a post (404 if none is live)
  POST   /sandbox/channels/{handle}/posts/{message_id}/delete
                                                        the same from the page's form; 303 to /
  POST   /sandbox/channels/{handle}/refuse              {"mode": "not_found" | "not_admin" | "blocked" | "off"}
  GET    /sandbox/faults                                the armed faults
  POST   /sandbox/faults                                {"method": "sendMessage" (or "*"), "kind": "429" |
         "500" | "502" | "stall_after_post", "count": 1, "retry_after": 5, "stall_s": 30}
  DELETE /sandbox/faults                                disarm every fault
  POST   /sandbox/reset                                 forget every channel, post and fault
  GET    /                                              the page
{handle} is the username with or without its @. A fault fails the next
`count` calls of the method: 429 with parameters.retry_after, 500 with a
Telegram body, 502 with a proxy's HTML page; stall_after_post does the call
(stores the post) and then holds the answer for stall_s seconds, so a test
can kill a worker after the post is out but before it records it. Faults
live in memory; channels and posts in <data dir>/telegram-sandbox/."""
import secrets
import string

ALPHABET = string.ascii_letters + string.digits + "-_"


def new_token() -> str:
    """A fresh random bot token in Telegram's shape: `<bot id>:<35 url-safe characters>`."""
    bot_id = secrets.randbelow(9_000_000_000) + 1_000_000_000
    return f"{bot_id}:" + "".join(secrets.choice(ALPHABET) for _ in range(35))
