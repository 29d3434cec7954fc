"""A local stand-in for the Telegram Bot API: the methods the platform's
processes call (the channel adapter, services/campaigns/telegram.py, and
the bot), its own storage, a page listing each channel's posts with a delete
button, and a control API for people and tests. Run it with `python -m
sandbox` (docs/sandbox.md).

The Bot API, at /bot<token>/<method> (GET or POST; the query string, a JSON
body or a urlencoded form as python-telegram-bot sends it; any Host): getMe,
getChat, getChatMember, getChatAdministrators, sendMessage, sendPhoto (photo
by URL), editMessageText, editMessageReplyMarkup, deleteMessage,
answerCallbackQuery, getUpdates, deleteWebhook, getWebhookInfo, logOut,
close. Answers are Telegram's: {"ok": true, "result": ...} or {"ok": false,
"error_code": N, "description": "...", "parameters": {"retry_after": N}}
with the same HTTP status (and a Retry-After header with retry_after).
Only the configured token is accepted (401 Unauthorized otherwise; 404 Not
Found for a path without a token of Telegram's shape); an unknown method is
404 Not Found. logOut makes every call 401 for ten minutes (or until a
reset or restart); close is 429 in the bot's first ten minutes.

Channels: any @handle Telegram could give out (5-32 letters, digits and
single underscores, a letter first, no underscore last) is a channel that
exists, with the bot an administrator that can post, unless told to
refuse; any other is "chat not found". Its chat id is stable (-100 and ten
digits from a hash of the handle) and its message ids count up from 1.
Text (sandbox/text.py): parse_mode HTML, MarkdownV2 or Markdown read into
entities ("can't parse entities: ..." for broken markup), trimmed, counted
in UTF-16 code units; a post keeps its buttons. Refusals, as Telegram
words them:
  not_found  every call naming the chat: 400 "Bad Request: chat not found"
  not_admin  the bot dismissed, so out of the channel: getChatMember says
             it has left; other members and getChatAdministrators: 400
             "Bad Request: member list is inaccessible"; posting, editing
             and deleting: 403 "Forbidden: bot is not a member of the
             channel chat"
  no_post_rights  the bot an administrator without can_post_messages:
             sendMessage, sendPhoto: 400 "Bad Request: need administrator
             rights in the channel chat"
  blocked    every call naming the chat: 403 "Forbidden: bot was kicked
             from the channel chat"
editMessageReplyMarkup without buttons on a live post without buttons
answers 400 "message is not modified" (the adapter's proof probe); on a
deleted one 400 "message to edit not found". deleteMessage of a post 48 hours old: 400 "message
can't be deleted". sendPhoto takes a URL or a file_id it gave
(sandbox/media.py): none, anything else, or a URL marked unreachable are
refused in Telegram's words.

Time and limits: every date and limit reads the sandbox's clock
(sandbox/clock.py), which tests move forward; flood control
(sandbox/limits.py: per chat, per channel a minute, all chats; the
TELEGRAM_SANDBOX_FLOOD_* settings) answers 429 with retry_after.

Users (sandbox/people.py, sandbox/private.py): created through the control
API, each with a positive id; a user's status in a channel (creator,
administrator, member; left unless set) is what getChatMember answers, in
Telegram's ChatMember shapes, and creators and administrators are listed by
getChatAdministrators with the bot. A user writes to the bot and presses its
buttons through the control API; the bot receives those as `message` and
`callback_query` updates (getUpdates, sandbox/updates.py: ids kept across a
restart, an offset confirms, long polling, 409 Conflict for the waiting
poll when another starts). The bot may write to a user only once the user
has written to it (403 "Forbidden: bot can't initiate conversation with a
user" before), edits its messages there (editMessageText,
editMessageReplyMarkup) and answers presses (answerCallbackQuery).

Control API (JSON only; every call needs `Authorization: Bearer
<TELEGRAM_SANDBOX_CONTROL_TOKEN>` and a loopback Host, else 401 or 403; a
body that is not application/json is 415; sandbox/guard.py):
  GET    /sandbox/channels                              every channel with its members and posts
  GET    /sandbox/channels/{handle}                     one channel with its members and posts
  GET    /sandbox/channels/{handle}/posts               its posts, newest first:
         message_id, text, media_url, photo, date, deleted, deleted_at (unix seconds)
  DELETE /sandbox/channels/{handle}/posts/{message_id}  delete a post (404 if none is live)
  POST   /sandbox/channels/{handle}/refuse              {"mode": "not_found" | "not_admin" | "no_post_rights" |
                                                        "blocked" | "off"}
  PUT    /sandbox/channels/{handle}/members/{user_id}   {"status": "creator" | "administrator" | "member" | "left"}
  GET    /sandbox/faults                                the armed faults
  POST   /sandbox/faults                                {"method": "sendMessage" (or "*"), "kind": "429" |
         "500" | "502" | "stall_after_post", "count": 1, "retry_after": 5, "stall_s": 30,
         "chat_type": "channel" | "private" (only calls naming such a chat; absent: any call)}
  DELETE /sandbox/faults                                disarm every fault
  GET    /sandbox/users                                 every user
  POST   /sandbox/users                                 {"username"?, "first_name"?} -> 201 {"id", "username", "first_name"}
  POST   /sandbox/users/{id}/messages                   {"text"}: the user writes to the bot -> 201 {"update_id", "message_id"}
  GET    /sandbox/users/{id}/messages                   what the bot sent the user, newest first
  POST   /sandbox/users/{id}/callbacks                  {"message_id", "data"}: a button press -> 201
                                                        {"update_id", "callback_query_id"}
  GET    /sandbox/users/{id}/callbacks                  the user's presses and the bot's answers
  GET    /sandbox/updates                               the bot's pending updates and allowed_updates
  GET    /sandbox/clock                                 {"now", "offset_s"}: the sandbox's time
  POST   /sandbox/clock                                 {"advance_s": N} or {"now": unix}: forward only (409)
  GET    /sandbox/media/unreachable                     the URLs sendPhoto cannot fetch
  POST   /sandbox/media/unreachable                     {"url"}: sendPhoto of it fails from now on
  DELETE /sandbox/media/unreachable                     every URL reachable again
  POST   /sandbox/reset                                 forget every channel, post, user, message,
                                                        update, fault, unreachable URL, flood count
                                                        and logOut (the clock stays)
The page (a loopback Host, no token):
  GET    /                                              the page
  POST   /sandbox/channels/{handle}/posts/{message_id}/delete
                                                        its Delete button, with the page's form token; 303 to /
{handle} is the username with or without its @. A fault fails the next
`count` calls of the method: 429 with parameters.retry_after, 500 with a
Telegram body, 502 with a proxy's HTML page; stall_after_post does the call
(stores the post) and then holds the answer for stall_s seconds, so a test
can kill a worker after the post is out but before it records it. Faults,
flood counts and logOut live in memory; everything else (the clock's
offset too) in <data dir>/telegram-sandbox/ (0600)."""
import re
import secrets
import string

ALPHABET = string.ascii_letters + string.digits + "-_"
# A bot token's shape: `<bot id>:<secret>`. Telegram answers 404 Not Found
# to a path with anything else, 401 Unauthorized to a wrong token of it.
TOKEN = re.compile(r"(\d{1,20}):([A-Za-z0-9_-]+)")


def new_token() -> str:
    """A fresh random bot token in Telegram's shape: `<bot id>:<35 url-safe characters>`."""
    bot_id = secrets.randbelow(9_000_000_000) + 1_000_000_000
    return f"{bot_id}:" + "".join(secrets.choice(ALPHABET) for _ in range(35))
