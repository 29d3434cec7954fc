"""The page at `/`: each channel's posts, newest first, with a delete button
(a plain form POST; no JavaScript, nothing loaded from elsewhere)."""
import datetime as dt
from html import escape
from urllib.parse import quote

from sandbox.store import Store

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h2 { margin-top: 2rem; } .muted { color: #777; } .refuse { color: #b00; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }
td.text { white-space: pre-wrap; max-width: 40rem; } tr.deleted td { color: #999; text-decoration: line-through; }
"""


def _time(seconds: int | None) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if seconds else ""


def _link(url: str | None) -> str:
    if not url:
        return ""
    if url.startswith(("http://", "https://")):
        return f'<a href="{escape(url)}" rel="noreferrer">{escape(url)}</a>'
    return escape(url)


def render(store: Store) -> str:
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
                button = f"<form method='post' action='{action}'><button type='submit'>Delete</button></form>"
            kind = "photo" if post.photo else "link preview" if post.media_url else ""
            parts.append(f"<tr class='{'deleted' if post.deleted else 'up'}'><td>{post.message_id}</td>"
                         f"<td>{_time(post.date)}</td><td class='text'>{escape(post.text)}</td>"
                         f"<td>{_link(post.media_url)} <span class='muted'>{kind}</span></td>"
                         f"<td>{state}</td><td>{button}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
