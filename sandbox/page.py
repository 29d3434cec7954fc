"""The page at `/`: each channel's posts, newest first, with a delete button
(a plain form POST carrying the page's token; no JavaScript, nothing loaded
from elsewhere), then each user with what the bot sent them."""
import datetime as dt
from collections.abc import Callable
from html import escape
from urllib.parse import quote

from sandbox.people import People
from sandbox.store import Store

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h2 { margin-top: 2rem; } .muted { color: #777; } .refuse { color: #b00; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }
td.text { white-space: pre-wrap; max-width: 40rem; } tr.deleted td { color: #999; text-decoration: line-through; }
.button { display: inline-block; border: 1px solid #999; border-radius: .3rem; padding: 0 .4rem; margin: .1rem; }
"""


def _time(seconds: int | None) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if seconds else ""


def _link(url: str | None) -> str:
    if not url:
        return ""
    if url.startswith(("http://", "https://")):
        return f'<a href="{escape(url)}" rel="noreferrer">{escape(url)}</a>'
    return escape(url)


def render(store: Store, people: People, form_token: Callable[[str], str]) -> str:
    """The page; `form_token(action)` is the token a delete form to `action` carries."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Telegram sandbox</title>",
             f"<style>{STYLE}</style></head><body><h1>Telegram Bot API sandbox</h1>"]
    channels = store.channels()
    if not channels:
        parts.append("<p class='muted'>No channel yet: a channel appears when the bot first looks it up.</p>")
    for channel in channels:
        refuse = f" <span class='refuse'>refuses: {escape(channel.refuse)}</span>" if channel.refuse else ""
        parts.append(f"<h2>@{escape(channel.title)} <span class='muted'>{channel.chat_id}</span>{refuse}</h2>")
        posts = store.posts(channel.chat_id)
        if not posts:
            parts.append("<p class='muted'>No posts.</p>")
            continue
        parts.append("<table><tr><th>id</th><th>posted</th><th>text</th><th>media</th><th>state</th><th></th></tr>")
        for post in posts:
            if post.deleted:
                state, button = f"deleted {_time(post.deleted_at)}", ""
            else:
                action = f"/sandbox/channels/{quote(channel.username)}/posts/{post.message_id}/delete"
                state = "up"
                button = (f"<form method='post' action='{action}'><input type='hidden' name='token'"
                          f" value='{form_token(action)}'><button type='submit'>Delete</button></form>")
            kind = "photo" if post.photo else "link preview" if post.media_url else ""
            parts.append(f"<tr class='{'deleted' if post.deleted else 'up'}'><td>{post.message_id}</td>"
                         f"<td>{_time(post.date)}</td><td class='text'>{escape(post.text)}</td>"
                         f"<td>{_link(post.media_url)} <span class='muted'>{kind}</span></td>"
                         f"<td>{state}</td><td>{button}</td></tr>")
        parts.append("</table>")
    parts += _users(people)
    parts.append("</body></html>")
    return "".join(parts)


def _users(people: People) -> list[str]:
    """Each user and the bot's messages to them, newest first, buttons as labels."""
    parts = []
    for user in people.users():
        name = f"@{user.username}" if user.username else user.first_name
        parts.append(f"<h2>{escape(name)} <span class='muted'>user {user.id}</span></h2>")
        messages = people.bot_messages(user.id)
        if not messages:
            parts.append("<p class='muted'>The bot has sent nothing.</p>")
            continue
        parts.append("<table><tr><th>id</th><th>sent</th><th>text</th><th>buttons</th></tr>")
        for message in messages:
            buttons = "".join(f"<span class='button'>{escape(b['text'])}</span>" for b in message.buttons())
            edited = f" <span class='muted'>edited {_time(message.edit_date)}</span>" if message.edit_date else ""
            parts.append(f"<tr><td>{message.message_id}</td><td>{_time(message.date)}{edited}</td>"
                         f"<td class='text'>{escape(message.text)}</td><td>{buttons}</td></tr>")
        parts.append("</table>")
    return parts
