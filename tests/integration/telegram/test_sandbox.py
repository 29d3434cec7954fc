"""The Bot API sandbox itself: Telegram's protocol on the wire, its storage
across a restart, its page and control API (and who may use them), its
settings and its stop."""
import asyncio
import re
import secrets
import signal
import stat
import subprocess
import sys
import time

import httpx
import pytest

from sandbox import new_token
from sandbox.testing import control_headers, running_sandbox
from services.campaigns.telegram import TelegramChannels, TransientChannelError

TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]{35}")


def test_new_token_has_telegrams_shape_and_is_fresh_each_time():
    tokens = {new_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(TOKEN_SHAPE.fullmatch(token) for token in tokens)


async def test_only_the_configured_token_is_accepted_as_telegram_refuses_others(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        wrong = await http.post(f"/bot{new_token()}/getMe")
        right = await http.get(f"/bot{sandbox.token}/getMe")
    assert (wrong.status_code, wrong.json()) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert right.status_code == 200 and right.json()["ok"] is True
    assert right.json()["result"]["id"] == int(sandbox.token.split(":")[0])


async def test_an_unknown_method_is_not_found(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        answer = await http.post(f"/bot{sandbox.token}/sendSticker", json={"chat_id": "@abcdef"})
    assert (answer.status_code, answer.json()["description"]) == (404, "Not Found")


async def test_a_json_body_is_read_like_a_form(sandbox, handle):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        chat = (await http.post(f"/bot{sandbox.token}/getChat", json={"chat_id": handle})).json()["result"]
        sent = await http.post(f"/bot{sandbox.token}/sendMessage", json={"chat_id": chat["id"], "text": "json"})
        by_query = await http.get(f"/bot{sandbox.token}/sendMessage", params={"chat_id": chat["id"], "text": "q"})
    assert sent.json()["result"]["message_id"] == 1 and by_query.json()["result"]["message_id"] == 2
    assert [post["text"] for post in await sandbox.posts(handle)] == ["q", "json"]


async def test_a_429_carries_retry_after_as_telegram_does(sandbox, handle):
    await sandbox.fault("getChat", "429", retry_after=3)
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        answer = await http.post(f"/bot{sandbox.token}/getChat", data={"chat_id": handle})
    assert answer.status_code == 429
    assert answer.json() == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
                             "parameters": {"retry_after": 3}}


async def test_a_bad_control_call_is_refused_with_its_reason(sandbox, handle):
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        mode = await http.post(f"/sandbox/channels/{handle}/refuse", json={"mode": "sometimes"})
        kind = await http.post("/sandbox/faults", json={"method": "sendMessage", "kind": "404"})
        gone = await http.delete(f"/sandbox/channels/{handle}/posts/5")
    assert mode.status_code == 400 and "not_found" in mode.json()["error"]
    assert kind.status_code == 400 and "stall_after_post" in kind.json()["error"]
    assert gone.status_code == 404


async def test_reset_forgets_channels_posts_and_faults(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
            chat_id = await adapter.chat_for_posting("@to_forget")
            await adapter.publish(chat_id, "@to_forget", "gone soon", None)
            await sandbox.fault("sendMessage", "500", count=5)
            await sandbox.reset()
            assert await sandbox.channels() == []
            chat_id = await adapter.chat_for_posting("@to_forget")
            assert (await adapter.publish(chat_id, "@to_forget", "first again", None)).message_id == 1


async def test_posts_survive_a_restart_and_ids_go_on(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
            chat_id = await adapter.chat_for_posting("@durable")
            first = await adapter.publish(chat_id, "@durable", "before the restart", None)
            await sandbox.delete("@durable", first.message_id)
            await adapter.publish(chat_id, "@durable", "still up", "https://example.com/p.png")
        await sandbox.restart()
        posts = await sandbox.posts("@durable")
        assert [(p["message_id"], p["text"], p["deleted"]) for p in posts] == \
            [(2, "still up", False), (1, "before the restart", True)]
        async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
            assert await adapter.chat_for_posting("@durable") == chat_id
            assert await adapter.is_up(chat_id, 2) is True
            assert (await adapter.publish(chat_id, "@durable", "after", None)).message_id == 3


async def test_the_page_lists_posts_newest_first_and_its_button_deletes(sandbox, handle):
    async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
        chat_id = await adapter.chat_for_posting(handle)
        await adapter.publish(chat_id, handle, "older <b>post</b>", None)
        await adapter.publish(chat_id, handle, "newer post", "https://example.com/n.jpg")
        page = await sandbox.page()
        assert page.index("newer post") < page.index("older &lt;b&gt;post&lt;/b&gt;")  # escaped, newest first
        assert 'href="https://example.com/n.jpg"' in page
        assert "<script" not in page and "//cdn" not in page
        action, token = re.search(rf"<form method='post' action='(/sandbox/channels/{handle[1:]}/posts/1/delete)'>"
                                  r"<input type='hidden' name='token' value='(\w+)'>", page).groups()
        async with httpx.AsyncClient(base_url=sandbox.api_url) as browser:
            answer = await browser.post(action, data={"token": token}, follow_redirects=True)
        assert answer.status_code == 200 and str(answer.url) == sandbox.page_url
        assert [post["deleted"] for post in await sandbox.posts(handle)] == [False, True]
        assert await adapter.is_up(chat_id, 1) is False
        assert f"{handle[1:]}/posts/1/delete" not in answer.text  # no button on a deleted post


async def test_sigterm_stops_it_promptly_even_while_an_answer_is_held(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        async with TelegramChannels(sandbox.api_url, sandbox.token, timeout_s=30) as adapter:
            chat_id = await adapter.chat_for_posting("@stalled")
            await sandbox.fault("sendMessage", "stall_after_post", stall_s=60)
            held = asyncio.create_task(adapter.publish(chat_id, "@stalled", "held", None))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            # uvicorn drains, then re-raises the signal: it ends as killed by SIGTERM.
            assert await sandbox.stop(signal.SIGTERM, timeout_s=5) in (0, -signal.SIGTERM)
            assert time.monotonic() - started < 5
            with pytest.raises(TransientChannelError) as cut:
                await held
            assert cut.value.maybe_delivered


@pytest.mark.parametrize("name, token, complaint", [
    ("TELEGRAM_BOT_TOKEN", None, "TELEGRAM_BOT_TOKEN: Field required"),
    ("TELEGRAM_BOT_TOKEN", "changeme", "TELEGRAM_BOT_TOKEN"),
    ("TELEGRAM_BOT_TOKEN", "123456:changeme", "placeholder"),
    ("TELEGRAM_SANDBOX_CONTROL_TOKEN", None, "TELEGRAM_SANDBOX_CONTROL_TOKEN: Field required"),
    ("TELEGRAM_SANDBOX_CONTROL_TOKEN", "changeme", "TELEGRAM_SANDBOX_CONTROL_TOKEN: Value error, is a placeholder"),
    ("TELEGRAM_SANDBOX_CONTROL_TOKEN", "short-secret", "shorter than 16 characters"),
])
def test_it_refuses_to_start_without_real_tokens(tmp_path, name, token, complaint):
    env = {"ADTECH_DATA_DIR": str(tmp_path), "TELEGRAM_SANDBOX_PORT": "0", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path), "TELEGRAM_BOT_TOKEN": new_token(),
           "TELEGRAM_SANDBOX_CONTROL_TOKEN": secrets.token_urlsafe(32)}
    env.pop(name)
    if token:
        env[name] = token
    done = subprocess.run([sys.executable, "-m", "sandbox"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("config error: ") and complaint in line


# ---- who may use the control API and the page -------------------------------
async def test_a_control_call_without_the_token_or_with_a_wrong_one_is_401_and_changes_nothing(sandbox, handle):
    users = await sandbox.users()
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        for headers in ({}, control_headers(secrets.token_urlsafe(32)), {"Authorization": sandbox.control_token},
                        {"Authorization": f"Basic {sandbox.control_token}"}):
            for method, path, body in [("POST", f"/sandbox/channels/{handle}/refuse", {"mode": "blocked"}),
                                       ("POST", "/sandbox/users", {}), ("POST", "/sandbox/reset", None),
                                       ("GET", "/sandbox/channels", None)]:
                answer = await http.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (headers, path, answer.text)
                assert "Bearer" in answer.json()["error"] and answer.headers["www-authenticate"] == "Bearer"
    assert (await sandbox.channel(handle))["refuse"] is None and await sandbox.users() == users


async def test_a_control_call_naming_another_host_is_403_and_changes_nothing(sandbox, handle):
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        for host in ("telegram-sandbox:8081", "evil.example", "127.0.0.1.evil.example", "[::2]:80", ""):
            answer = await http.post(f"/sandbox/channels/{handle}/refuse", json={"mode": "blocked"},
                                     headers={"Host": host})
            assert answer.status_code == 403 and "loopback" in answer.json()["error"], host
        for host in ("localhost", f"localhost:{sandbox.port}", "[::1]:8081", "127.0.0.1"):
            answer = await http.get(f"/sandbox/channels/{handle}", headers={"Host": host})
            assert answer.status_code == 200, host
    assert (await sandbox.channel(handle))["refuse"] is None


async def test_a_control_body_that_is_not_json_is_415_and_changes_nothing(sandbox, handle):
    before = len(await sandbox.users())
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        refuse = await http.post(f"/sandbox/channels/{handle}/refuse", data={"mode": "blocked"})
        user = await http.post("/sandbox/users", content=b'{"username": "formed_user"}',
                               headers={"Content-Type": "text/plain"})
        bare = await http.post("/sandbox/users", content=b'{"username": "bare_user"}')
        reset = await http.post("/sandbox/reset", data={"a": "b"})
    assert [a.status_code for a in (refuse, user, bare, reset)] == [415] * 4
    assert all("application/json" in a.json()["error"] for a in (refuse, user, bare, reset))
    assert (await sandbox.channel(handle))["refuse"] is None and len(await sandbox.users()) == before


async def test_the_bot_api_answers_whatever_host_the_platforms_containers_use(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        answer = await http.get(f"/bot{sandbox.token}/getMe", headers={"Host": "telegram-sandbox:8081"})
    assert answer.status_code == 200 and answer.json()["result"]["username"] == "adtech_sandbox_bot"


async def test_the_page_needs_a_loopback_host_but_no_token(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as browser:
        assert (await browser.get("/")).status_code == 200
        assert (await browser.get("/", headers={"Host": "localhost:8081"})).status_code == 200
        assert (await browser.get("/", headers={"Host": "rebound.example:8081"})).status_code == 403


async def test_the_pages_delete_form_without_its_token_is_403_and_deletes_nothing(sandbox, handle):
    async with TelegramChannels(sandbox.api_url, sandbox.token) as adapter:
        chat_id = await adapter.chat_for_posting(handle)
        await adapter.publish(chat_id, handle, "keep me", None)
        await adapter.publish(chat_id, handle, "other", None)
    page = await sandbox.page()
    tokens = dict(re.findall(rf"{handle[1:]}/posts/(\d+)/delete'><input type='hidden' name='token' value='(\w+)'>",
                             page))
    action = f"/sandbox/channels/{handle[1:]}/posts/1/delete"
    async with httpx.AsyncClient(base_url=sandbox.api_url) as browser:
        for data in ({}, {"token": "0" * 64}, {"token": tokens["2"]}):  # another form's token is not this one's
            answer = await browser.post(action, data=data)
            assert answer.status_code == 403 and "token" in answer.json()["error"], data
        elsewhere = await browser.post(action, data={"token": tokens["1"]}, headers={"Host": "evil.example"})
        assert elsewhere.status_code == 403
    assert [post["deleted"] for post in await sandbox.posts(handle)] == [False, False]


async def test_its_database_file_is_readable_by_its_owner_only(sandbox):
    folder = sandbox.data_dir / "telegram-sandbox"
    assert stat.S_IMODE((folder / "sandbox.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for companion in folder.glob("sandbox.sqlite3-*"):  # the write-ahead log and its index
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion


async def test_a_fault_for_one_type_of_chat_lets_the_other_through(sandbox, handle):
    user = await sandbox.create_user()
    await sandbox.send_message(user["id"], "hi")
    await sandbox.fault("sendMessage", "500", chat_type="channel")
    async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        private = await http.post("/sendMessage", json={"chat_id": user["id"], "text": "to the user"})
        post = await http.post("/sendMessage", json={"chat_id": handle, "text": "to the channel"})
        again = await http.post("/sendMessage", json={"chat_id": handle, "text": "to the channel"})
    assert [private.status_code, post.status_code, again.status_code] == [200, 500, 200]
    async with httpx.AsyncClient(base_url=sandbox.api_url, headers=control_headers(sandbox.control_token)) as http:
        bad = await http.post("/sandbox/faults", json={"method": "sendMessage", "kind": "500", "chat_type": "group"})
    assert bad.status_code == 400
