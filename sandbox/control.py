"""The control API under /sandbox/ (JSON; routes in sandbox/__init__.py):
what people and tests do to the sandbox's Telegram: delete posts, make a
channel refuse, arm faults, create users, set their status in channels,
write to the bot and press its buttons, read what the bot did, move the
clock forward and make a media URL unreachable."""
import dataclasses
import json
import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.answers import ControlError
from sandbox.botapi import BotApi
from sandbox.clock import ClockError
from sandbox.faults import CHAT_TYPES, FAULT_KINDS, Fault
from sandbox.guard import Guard, refused
from sandbox.limits import Flood
from sandbox.media import http_url
from sandbox.people import STATUSES, User
from sandbox.store import REFUSALS, Channel

HANDLE = re.compile(r"@?([A-Za-z0-9_]{3,64})")


def routes(api: BotApi, guard: Guard, flood: Flood) -> list[Route]:
    store, people, private = api.store, api.people, api.private

    async def channels(request: Request) -> Response:
        return JSONResponse([channel_json(api, channel) for channel in store.channels()])

    async def channel(request: Request) -> Response:
        return JSONResponse(channel_json(api, store.channel(_handle(request))))

    async def posts(request: Request) -> Response:
        found = store.channel(_handle(request))
        return JSONResponse([post.as_json() for post in store.posts(found.chat_id)])

    async def delete_post(request: Request) -> Response:
        found = store.channel(_handle(request))
        if not store.delete_post(found.chat_id, _int(request.path_params["message_id"], "message_id")):
            raise ControlError("no live post with that message id", 404)
        return JSONResponse({"deleted": True})

    async def delete_from_page(request: Request) -> Response:
        """The page's Delete button: a form carrying the page's token; back to the page."""
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        if not guard.form_token_ok(request.url.path, form.get("token", "")):
            return refused(403, "the page's form token is missing or stale: reload the page")
        found = store.channel(_handle(request))
        store.delete_post(found.chat_id, _int(request.path_params["message_id"], "message_id"))
        return RedirectResponse("/", status_code=303)

    async def refuse(request: Request) -> Response:
        mode = (await _json(request)).get("mode")
        if mode not in (*REFUSALS, "off"):
            raise ControlError(f"mode must be one of {', '.join((*REFUSALS, 'off'))}")
        changed = store.set_refuse(_handle(request), None if mode == "off" else mode)
        return JSONResponse(channel_json(api, changed))

    async def member(request: Request) -> Response:
        status = (await _json(request)).get("status")
        if status not in STATUSES:
            raise ControlError(f"status must be one of {', '.join(STATUSES)}")
        user = _user(request)
        found = store.channel(_handle(request))
        people.set_status(found.chat_id, user.id, status)
        return JSONResponse({"handle": f"@{found.title}", "user_id": user.id, "status": status})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            api.faults.clear()
        elif request.method == "POST":
            api.faults.arm(*_fault(await _json(request)))
        return JSONResponse(api.faults.as_json())

    async def reset(request: Request) -> Response:
        store.reset()
        api.faults.clear()
        flood.clear()
        api.login.reset()
        return JSONResponse({"reset": True})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            if set(body) not in ({"advance_s"}, {"now"}):
                raise ControlError("the body is {\"advance_s\": seconds} or {\"now\": unix seconds}")
            value = body.get("advance_s", body.get("now"))
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError("advance_s and now are numbers")
            try:
                if "advance_s" in body:
                    api.clock.advance(value)
                else:
                    api.clock.set(value)
            except ClockError as error:
                raise ControlError(str(error), 409) from None
        return JSONResponse(api.clock.as_json())

    async def unreachable(request: Request) -> Response:
        if request.method == "DELETE":
            store.clear_unreachable()
        elif request.method == "POST":
            url = (await _json(request)).get("url")
            if not isinstance(url, str) or not http_url(url):
                raise ControlError("url is an http or https URL")
            store.mark_unreachable(url)
        return JSONResponse({"unreachable": store.unreachable_urls()})

    async def users(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse([user.as_json() for user in people.users()])
        body = await _json(request)
        username, first_name = body.get("username"), body.get("first_name")
        if not isinstance(username, str | None) or not isinstance(first_name, str | None):
            raise ControlError("username and first_name are strings")
        user = people.create_user(username and username.lstrip("@"), first_name, not_id=api.bot_id)
        return JSONResponse(user.as_json(), status_code=201)

    async def messages(request: Request) -> Response:
        user = _user(request)
        if request.method == "GET":
            return JSONResponse([message.as_json() for message in people.bot_messages(user.id)])
        text = (await _json(request)).get("text")
        if not isinstance(text, str):
            raise ControlError("text is a string")
        return JSONResponse(private.user_writes(user, text), status_code=201)

    async def callbacks(request: Request) -> Response:
        user = _user(request)
        if request.method == "GET":
            return JSONResponse([press.as_json() for press in people.callbacks(user.id)])
        body = await _json(request)
        data = body.get("data")
        if not isinstance(data, str):
            raise ControlError("data is the callback_data of one of the message's buttons")
        return JSONResponse(private.user_presses(user, _int(body.get("message_id"), "message_id"), data),
                            status_code=201)

    async def updates(request: Request) -> Response:
        return JSONResponse({"pending": api.updates.pending(), "allowed_updates": api.updates.allowed_updates()})

    def _user(request: Request) -> User:
        found = people.user(_int(request.path_params["user_id"], "user id"))
        if found is None:
            raise ControlError("no such user", 404)
        return found

    control = guard.control
    return [
        Route("/sandbox/channels", control(channels), methods=["GET"]),
        Route("/sandbox/channels/{handle}", control(channel), methods=["GET"]),
        Route("/sandbox/channels/{handle}/posts", control(posts), methods=["GET"]),
        Route("/sandbox/channels/{handle}/posts/{message_id}", control(delete_post), methods=["DELETE"]),
        Route("/sandbox/channels/{handle}/posts/{message_id}/delete", guard.page(delete_from_page), methods=["POST"]),
        Route("/sandbox/channels/{handle}/refuse", control(refuse), methods=["POST"]),
        Route("/sandbox/channels/{handle}/members/{user_id}", control(member), methods=["PUT"]),
        Route("/sandbox/faults", control(faults), methods=["GET", "POST", "DELETE"]),
        Route("/sandbox/reset", control(reset), methods=["POST"]),
        Route("/sandbox/clock", control(clock), methods=["GET", "POST"]),
        Route("/sandbox/media/unreachable", control(unreachable), methods=["GET", "POST", "DELETE"]),
        Route("/sandbox/users", control(users), methods=["GET", "POST"]),
        Route("/sandbox/users/{user_id}/messages", control(messages), methods=["GET", "POST"]),
        Route("/sandbox/users/{user_id}/callbacks", control(callbacks), methods=["GET", "POST"]),
        Route("/sandbox/updates", control(updates), methods=["GET"]),
    ]


def channel_json(api: BotApi, channel: Channel) -> dict:
    return {"handle": f"@{channel.title}", "chat_id": channel.chat_id, "refuse": channel.refuse,
            "members": [{"user_id": user.id, "username": user.username, "status": status}
                        for user, status in api.people.members(channel.chat_id)],
            "posts": [post.as_json() for post in api.store.posts(channel.chat_id)]}


def _handle(request: Request) -> str:
    match = HANDLE.fullmatch(request.path_params["handle"])
    if not match:
        raise ControlError("a handle is @name: 3-64 letters, digits or _")
    return match.group(1)


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(f"{name} is a number") from None


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ControlError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ControlError("the body is a JSON object")
    return body


def _fault(body: dict) -> tuple[str, Fault]:
    method, kind = body.get("method"), str(body.get("kind"))
    if not isinstance(method, str) or not method:
        raise ControlError("method names a Bot API method (or * for any)")
    if kind not in FAULT_KINDS:
        raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    try:
        fault = Fault(kind=kind, count=int(body.get("count", 1)), retry_after=int(body.get("retry_after", 5)),
                      stall_s=float(body.get("stall_s", 30.0)))
    except (TypeError, ValueError):
        raise ControlError("count and retry_after are integers, stall_s a number") from None
    if fault.count < 1 or fault.retry_after < 1 or fault.stall_s < 0:
        raise ControlError("count and retry_after are at least 1, stall_s at least 0")
    chat_type = body.get("chat_type")
    if chat_type is not None and chat_type not in CHAT_TYPES:
        raise ControlError(f"chat_type is one of {', '.join(CHAT_TYPES)}, or absent for any call")
    return method, dataclasses.replace(fault, chat_type=chat_type)
