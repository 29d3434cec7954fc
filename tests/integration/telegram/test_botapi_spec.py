"""Every answer the sandbox gives, to every method the platform uses,
checked against the machine-readable Bot API specification kept in
botapi-spec/ (its README: which version, from where, how to update it):
each required field present, each field of its type, no field the
specification does not know, and refusals in the error envelope."""
import json
import pathlib
import uuid

import httpx
import pytest

from sandbox.botapi import METHODS
from sandbox.testing import running_sandbox
from tests.integration.telegram.botapi_spec import SPEC, check, problems

SPEC_DIR = pathlib.Path(__file__).parent / "botapi-spec"
# What the platform's processes call (services/campaigns/telegram.py, bot.py), each checked below.
USED = {"getMe", "getChat", "getChatMember", "getChatAdministrators", "sendMessage", "sendPhoto", "editMessageText",
        "editMessageReplyMarkup", "deleteMessage", "getUpdates", "answerCallbackQuery", "deleteWebhook",
        "getWebhookInfo", "logOut", "close"}
BUTTONS = {"inline_keyboard": [[{"text": "Open", "url": "https://example.com/"},
                                {"text": "Yes", "callback_data": "yes:1"}]]}


@pytest.fixture(scope="module")
def sandbox(quiet_sandbox):
    return quiet_sandbox


@pytest.fixture(scope="module")
async def answer(sandbox):
    """Calls a method over plain HTTP and checks the answer against the
    specification: its body, after the assertion."""
    async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}", timeout=30.0) as http:
        async def call(method: str, expect: int = 200, **params) -> dict:
            response = await http.post(f"/{method}", json=params)
            body = response.json()
            assert response.status_code == expect, body
            assert problems(method, body) == [], (method, json.dumps(body)[:2000])
            return body
        yield call


def username() -> str:
    return f"spec_{uuid.uuid4().hex[:12]}"


def test_every_method_the_sandbox_serves_is_one_the_platform_uses_with_a_result_type_in_the_spec():
    assert set(METHODS) == USED
    assert {method: SPEC["methods"][method]["returns"] for method in USED if not SPEC["methods"][method]["returns"]} \
        == {}


def test_the_spec_readme_names_the_version_the_spec_holds():
    readme = (SPEC_DIR / "README.md").read_text()
    assert f"Bot API {SPEC['version']}" in readme and SPEC["source"].split(" ")[0] in readme


def test_the_check_finds_a_missing_field_an_unknown_one_a_wrong_type_and_a_wrong_kind():
    user = {"id": 1, "is_bot": False, "first_name": "a"}
    assert check(user, "User", "u") == []
    assert check({"id": 1, "is_bot": False}, "User", "u") == ["u.first_name: missing"]
    assert check({**user, "nickname": "x"}, "User", "u") == ["u.nickname: not in the specification"]
    assert check({**user, "id": "1"}, "User", "u") == ["u.id: not Integer (str '1')"]
    assert check({**user, "id": True}, "User", "u") == ["u.id: not Integer (bool True)"]
    assert check({**user, "last_name": None}, "User", "u") == ["u.last_name: null (Telegram leaves an absent field out)"]
    member = {"status": "owner", "user": user, "is_anonymous": False}
    assert check(member, "ChatMember", "m") != []  # no kind of ChatMember has status "owner"
    assert check({**member, "status": "creator"}, "ChatMember", "m") == []
    assert check([1, "2"], "Array of Integer", "a") == ["a[1]: not Integer (str '2')"]
    assert check(True, "Message or True", "r") == []
    assert problems("getMe", {"ok": True, "result": user, "extra": 1}) == ["extra: not in the specification"]
    assert problems("getMe", {"ok": False, "error_code": 400, "description": "x", "parameters": {"retry_after": 3}}) \
        == []


async def test_get_me_the_chats_and_the_webhook_answers_follow_the_spec(sandbox, answer):
    handle = f"@{username()}"
    await answer("getMe")
    await answer("getChat", chat_id=handle)
    user = await sandbox.create_user(username())
    await sandbox.send_message(user["id"], "hello")
    await answer("getChat", chat_id=user["id"])
    await answer("getWebhookInfo")
    await answer("deleteWebhook", drop_pending_updates=True)


@pytest.mark.parametrize("status", ["creator", "administrator", "member", "left"])
async def test_each_kind_of_channel_member_follows_the_spec(sandbox, answer, status):
    handle = f"@{username()}"
    user = await sandbox.create_user(username())
    await sandbox.set_member(handle, user["id"], status)
    member = await answer("getChatMember", chat_id=handle, user_id=user["id"])
    assert member["result"]["status"] == status
    await answer("getChatAdministrators", chat_id=handle)


@pytest.mark.parametrize("refuse", [None, "no_post_rights"])
async def test_the_bot_as_a_member_of_its_channel_follows_the_spec(sandbox, answer, refuse):
    handle = f"@{username()}"
    if refuse:
        await sandbox.refuse(handle, refuse)
    bot_id = int(sandbox.token.split(":")[0])
    member = await answer("getChatMember", chat_id=handle, user_id=bot_id)
    assert member["result"]["can_post_messages"] is (refuse is None)
    await answer("getChatAdministrators", chat_id=handle)


async def test_channel_posts_with_formatting_buttons_photos_and_edits_follow_the_spec(answer):
    handle = f"@{username()}"
    chat_id = (await answer("getChat", chat_id=handle))["result"]["id"]
    text = await answer("sendMessage", chat_id=chat_id, text="<b>Sale</b> at <a href='https://example.com'>shop</a>",
                        parse_mode="HTML", reply_markup=BUTTONS)
    assert text["result"]["entities"] and text["result"]["reply_markup"]
    await answer("sendMessage", chat_id=chat_id, text="*bold* and _italic_", parse_mode="MarkdownV2",
                 link_preview_options={"url": "https://example.com/a.jpg", "prefer_large_media": True})
    photo = await answer("sendPhoto", chat_id=chat_id, photo="https://example.com/a.jpg", caption="<i>Look</i>",
                         parse_mode="HTML")
    assert photo["result"]["caption_entities"]
    message_id = text["result"]["message_id"]
    edited = await answer("editMessageReplyMarkup", chat_id=chat_id, message_id=message_id)
    assert "reply_markup" not in edited["result"] and edited["result"]["edit_date"]
    await answer("editMessageReplyMarkup", 400, chat_id=chat_id, message_id=message_id)  # not modified
    await answer("editMessageText", 400, chat_id=chat_id, message_id=message_id, text="new")
    await answer("deleteMessage", chat_id=chat_id, message_id=message_id)


async def test_private_messages_updates_and_button_presses_follow_the_spec(sandbox, answer):
    user = await sandbox.create_user(username())
    await sandbox.send_message(user["id"], "/start code")
    sent = await answer("sendMessage", chat_id=user["id"], text="Accept <b>this</b>?", parse_mode="HTML",
                        reply_markup=BUTTONS)
    message_id = sent["result"]["message_id"]
    await answer("editMessageText", chat_id=user["id"], message_id=message_id, text="Still?", reply_markup=BUTTONS)
    await answer("editMessageReplyMarkup", chat_id=user["id"], message_id=message_id,
                 reply_markup={"inline_keyboard": [[{"text": "No", "callback_data": "no:1"}]]})
    press = await sandbox.press(user["id"], message_id, "no:1")
    updates = await answer("getUpdates", allowed_updates=["message", "callback_query"])
    assert {kind for update in updates["result"] for kind in update if kind != "update_id"} >= \
        {"message", "callback_query"}
    await answer("answerCallbackQuery", callback_query_id=press["callback_query_id"], text="Done")
    await answer("getUpdates", offset=updates["result"][-1]["update_id"] + 1)


async def test_refusals_follow_the_error_envelope(sandbox, answer):
    handle = f"@{username()}"
    await answer("getChat", 400, chat_id="@ab")
    await answer("sendMessage", 400, chat_id=handle, text="<b>open", parse_mode="HTML")
    await answer("sendMessage", 400, chat_id=handle, text="x", parse_mode="Textile")
    await answer("getChatMember", 400, chat_id=handle, user_id=424242)
    await answer("answerCallbackQuery", 400, callback_query_id="42")
    await sandbox.fault("sendMessage", "429", retry_after=3)
    flood = await answer("sendMessage", 429, chat_id=handle, text="hi")
    assert flood["parameters"] == {"retry_after": 3}


async def test_log_out_and_close_follow_the_spec(tmp_path):
    async with running_sandbox(tmp_path) as fresh:
        async with httpx.AsyncClient(base_url=f"{fresh.api_url}/bot{fresh.token}") as http:
            await fresh.advance_clock(601)  # close answers 429 in a bot's first ten minutes
            for method, status in [("close", 200), ("logOut", 200), ("getMe", 401)]:
                response = await http.post(f"/{method}")
                assert response.status_code == status, response.text
                assert problems(method, response.json()) == []
