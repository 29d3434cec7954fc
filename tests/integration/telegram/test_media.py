"""sendPhoto's photo as Telegram takes it: a URL (marked unreachable through
the control API, it cannot be fetched) or the file_id of a photo sent
before; anything else is refused in Telegram's words, and the adapter
takes each refusal as definite (the publisher fails the job and refunds)."""
import httpx
import pytest

from sandbox.testing import control_headers
from services.campaigns.telegram import CAPTION_LIMIT, ChannelRefused

NO_PHOTO = "Bad Request: there is no photo in the request"
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
UNREACHABLE = "Bad Request: failed to get HTTP URL content"


async def test_send_photo_without_a_photo_is_refused(bot_api, handle):
    for params in ({}, {"photo": ""}, {"photo": "   "}):
        code, body = await bot_api("sendPhoto", chat_id=handle, caption="no picture", **params)
        assert (code, body) == (400, {"ok": False, "error_code": 400, "description": NO_PHOTO}), params


@pytest.mark.parametrize("photo", ["not a url", "ftp://example.com/a.jpg", "https://", "example.com/a.jpg",
                                   "https://exa mple.com/a.jpg", "AgACAgQ-not-ours", "sandbox--100123-1",
                                   "javascript:alert(1)"])
async def test_a_photo_that_is_neither_a_url_nor_a_file_id_the_sandbox_gave_is_refused(sandbox, bot_api, handle,
                                                                                          photo):
    code, body = await bot_api("sendPhoto", chat_id=handle, photo=photo)
    assert (code, body["description"]) == (400, WRONG_FILE)
    assert await sandbox.posts(handle) == []


async def test_a_file_id_the_sandbox_gave_sends_the_same_photo_again(sandbox, bot, handle):
    first = await bot.send_photo(handle, "https://example.com/cat.jpg", caption="once")
    again = await bot.send_photo(handle, first.photo[-1].file_id, caption="twice")
    assert again.photo[-1].file_id != first.photo[-1].file_id
    assert [post["media_url"] for post in await sandbox.posts(handle)] == ["https://example.com/cat.jpg"] * 2


async def test_a_url_marked_unreachable_cannot_be_fetched_until_the_marks_are_cleared(sandbox, bot_api, handle):
    url = "https://images.example.com/gone.png"
    await sandbox.unreachable(url)
    assert url in await sandbox.unreachable_media()
    code, body = await bot_api("sendPhoto", chat_id=handle, photo=url)
    assert (code, body["description"]) == (400, UNREACHABLE)
    assert (await bot_api("sendPhoto", chat_id=handle, photo="https://images.example.com/fine.png"))[0] == 200
    await sandbox.clear_unreachable()
    assert (await bot_api("sendPhoto", chat_id=handle, photo=url))[0] == 200
    assert await sandbox.unreachable_media() == []


async def test_only_an_http_url_can_be_marked_unreachable(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        for body in ({"url": "not a url"}, {"url": 5}, {}):
            answer = await http.post("/sandbox/media/unreachable", json=body)
            assert answer.status_code == 400 and "http" in answer.json()["error"], body


@pytest.mark.parametrize("photo, words", [("https://images.example.com/broken.png", UNREACHABLE),
                                          ("an advertiser's typo", WRONG_FILE)])
async def test_the_adapter_takes_a_bad_photo_as_a_definite_refusal(sandbox, channels, handle, photo, words):
    await sandbox.unreachable("https://images.example.com/broken.png")
    chat_id = await channels.chat_for_posting(handle)
    with pytest.raises(ChannelRefused) as refused:
        await channels.publish(chat_id, handle, "Spring sale", photo)
    assert words.removeprefix("Bad Request: ").lower() in refused.value.telegram_words.lower()
    assert await sandbox.posts(handle) == []


async def test_a_long_post_shows_an_unreachable_photo_as_a_link_preview_which_telegram_does_not_refuse(
        sandbox, channels, handle):
    url = "https://images.example.com/preview-gone.png"
    await sandbox.unreachable(url)
    chat_id = await channels.chat_for_posting(handle)
    await channels.publish(chat_id, handle, "x" * (CAPTION_LIMIT + 1), url)
    [post] = await sandbox.posts(handle)
    assert (post["photo"], post["media_url"]) == (False, url)
