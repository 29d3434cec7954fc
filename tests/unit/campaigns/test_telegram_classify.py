"""classify: the one table that tells a transient Bot API failure from a
definite refusal (services/campaigns/telegram.py)."""
import datetime as dt

import httpx
import pytest
from telegram import error as tg

from services.campaigns.telegram import (ChannelError, ChannelRefused, TokenRejected, TransientChannelError,
                                         classify, username_of)


def test_flood_control_is_transient_with_its_retry_after():
    error = classify(tg.RetryAfter(7))
    assert isinstance(error, TransientChannelError)
    assert error.retry_after == 7.0
    assert not error.maybe_delivered


def test_flood_control_given_as_a_timedelta_keeps_its_seconds():
    assert classify(tg.RetryAfter(dt.timedelta(seconds=2.5))).retry_after == 2.5


@pytest.mark.parametrize("description", ["Bad Request: chat not found", "Bad Request: not enough rights to send text messages to the chat",
                                         "Bad Request: need administrator rights in the channel chat",
                                         "Bad Request: message text is empty"])
def test_a_bad_request_is_a_definite_refusal(description):
    error = classify(tg.BadRequest(description))
    assert type(error) is ChannelRefused
    assert description.removeprefix("Bad Request: ").lower() in error.message.lower()


@pytest.mark.parametrize("description", ["Forbidden: bot was kicked from the channel chat",
                                         "Forbidden: bot is not a member of the channel chat",
                                         "Forbidden: bot was blocked by the user"])
def test_forbidden_is_a_definite_refusal(description):
    assert type(classify(tg.Forbidden(description))) is ChannelRefused


def test_a_rejected_token_is_definite_and_its_message_does_not_quote_the_token():
    token = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    error = classify(tg.InvalidToken(f"The token `{token}` was rejected by the server."))
    assert isinstance(error, TokenRejected) and isinstance(error, ChannelRefused)
    assert token not in error.message and token not in str(error)


def test_a_server_error_is_transient():
    error = classify(tg.NetworkError("Internal Server Error (500)"))
    assert type(error) is TransientChannelError and error.retry_after is None


def test_a_read_timeout_may_have_delivered_the_request():
    timeout = tg.TimedOut("Timed out")
    timeout.__cause__ = httpx.ReadTimeout("read")
    assert classify(timeout).maybe_delivered


def test_a_connect_failure_delivered_nothing():
    wrapped = tg.NetworkError("httpx.ConnectError: refused")
    wrapped.__cause__ = httpx.ConnectError("refused")
    error = classify(wrapped)
    assert isinstance(error, TransientChannelError) and not error.maybe_delivered
    timeout = tg.TimedOut("Pool timeout")
    timeout.__cause__ = httpx.PoolTimeout("pool")
    assert not classify(timeout).maybe_delivered


def test_raw_network_errors_are_transient():
    assert isinstance(classify(httpx.ConnectError("refused")), TransientChannelError)
    assert isinstance(classify(ConnectionResetError()), TransientChannelError)


def test_a_channel_error_is_returned_as_it_is():
    error = ChannelRefused("no")
    assert classify(error) is error


def test_an_error_from_elsewhere_is_not_classified():
    with pytest.raises(TypeError):
        classify(KeyError("x"))


def test_every_class_carries_a_human_message():
    for error in (classify(tg.RetryAfter(1)), classify(tg.BadRequest("x")), classify(tg.NetworkError("y"))):
        assert isinstance(error, ChannelError) and error.message and str(error) == error.message


@pytest.mark.parametrize("handle", ["@news_channel", "news_channel", "https://t.me/news_channel", "t.me/news_channel"])
def test_a_handle_names_its_username(handle):
    assert username_of(handle) == "news_channel"


@pytest.mark.parametrize("handle", ["@", "@a", "@bad name", "@x/1"])
def test_a_malformed_handle_is_refused(handle):
    with pytest.raises(ChannelRefused):
        username_of(handle)
