"""The bot's token and its session as Telegram's cloud server treats them:
a path without a token of the right shape is 404 Not Found, a wrong token
401 Unauthorized (the adapter takes both as a rejected token); after
logOut every call is 401 for ten minutes (by the sandbox's clock) or until
a reset or restart; close answers 429 in the bot's first ten minutes."""
import httpx
import pytest

from sandbox import new_token
from sandbox.testing import running_sandbox
from services.campaigns.telegram import TelegramChannels, TokenRejected

NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}
UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}


@pytest.mark.parametrize("path", ["/botnot-a-token/getMe", "/bot123456/getMe", "/bot:abcdefghijklmnop/getMe",
                                  "/botabc:defghijklmnopqrstu/getMe", "/bot/getMe", "/bot", "/bot123:abc/d/e"])
async def test_a_path_without_a_token_of_telegrams_shape_is_not_found(sandbox, path):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        answer = await http.post(path)
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize("token", ["not-a-token", "123456:"])
async def test_the_adapter_takes_a_token_of_the_wrong_shape_as_rejected(sandbox, token):
    with pytest.raises(TokenRejected):
        async with TelegramChannels(sandbox.api_url, token):
            pass


async def test_after_log_out_every_call_is_unauthorized_for_ten_minutes(tmp_path):
    async with running_sandbox(tmp_path) as sandbox, httpx.AsyncClient(
            base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        assert (await http.post("/logOut")).json() == {"ok": True, "result": True}
        for method in ("getMe", "sendMessage", "logOut", "noSuchMethod"):
            answer = await http.post(f"/{method}", json={"chat_id": "@after", "text": "x"})
            assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED), method
        with pytest.raises(TokenRejected):
            async with TelegramChannels(sandbox.api_url, sandbox.token):
                pass
        await sandbox.advance_clock(599)
        assert (await http.post("/getMe")).status_code == 401
        await sandbox.advance_clock(2)
        assert (await http.post("/getMe")).status_code == 200


async def test_a_reset_or_a_restart_ends_a_log_out(tmp_path):
    async with running_sandbox(tmp_path) as sandbox:
        async def get_me() -> int:
            async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
                return (await http.post("/getMe")).status_code
        async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
            await http.post("/logOut")
        assert await get_me() == 401
        await sandbox.reset()
        assert await get_me() == 200
        async with httpx.AsyncClient(base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
            await http.post("/logOut")
        await sandbox.restart()
        assert await get_me() == 200


async def test_close_is_429_in_the_bots_first_ten_minutes_and_true_after(tmp_path):
    async with running_sandbox(tmp_path) as sandbox, httpx.AsyncClient(
            base_url=f"{sandbox.api_url}/bot{sandbox.token}") as http:
        early = await http.post("/close")
        assert early.status_code == 429 and early.json()["description"].startswith("Too Many Requests: retry after ")
        wait = early.json()["parameters"]["retry_after"]
        assert 590 <= wait <= 600 and early.headers["retry-after"] == str(wait)
        await sandbox.advance_clock(wait)
        assert (await http.post("/close")).json() == {"ok": True, "result": True}
        assert (await http.post("/getMe")).status_code == 200  # the next call launches the bot again
        assert (await http.post("/close")).status_code == 429


async def test_a_wrong_token_of_the_right_shape_stays_unauthorized(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.api_url) as http:
        answer = await http.post(f"/bot{new_token()}/getMe")
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)
