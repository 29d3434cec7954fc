"""The gateway refuses at the edge, and documents, exactly the limits the
services enforce: a text one character longer than a service accepts
never reaches it, and one it accepts is never refused by the gateway."""
from gateway import inputs
from services.campaigns import domain as campaigns
from services.campaigns.usecases.campaigns import MAX_CREATIVES_PER_REQUEST
from services.moderation import domain as moderation
from services.payments import domain as payments


def test_text_limits_are_the_services():
    assert (inputs.NAME_MAX, inputs.TITLE_MAX, inputs.CREATIVE_TEXT_MAX, inputs.MEDIA_URL_MAX) == \
        (campaigns.NAME_MAX, campaigns.TITLE_MAX, campaigns.CREATIVE_TEXT_MAX, campaigns.MEDIA_URL_MAX)
    assert inputs.REASON_MAX == campaigns.REASON_MAX == moderation.MAX_REASON
    assert (inputs.REFERENCE_MAX, inputs.IDEMPOTENCY_KEY_MAX) == (payments.MAX_REFERENCE, payments.MAX_IDEMPOTENCY_KEY)
    assert (inputs.DESTINATION_MAX, inputs.EXTERNAL_REFERENCE_MAX, inputs.REASON_MAX) == \
        (payments.MAX_DESTINATION, payments.MAX_EXTERNAL_REFERENCE, payments.MAX_REJECTION_REASON)
    assert inputs.CREATIVES_MAX == MAX_CREATIVES_PER_REQUEST


def test_money_bound_is_campaigns_price_limit():
    assert 10**inputs.MONEY_DIGITS == campaigns.PRICE_LIMIT


def test_handle_and_currency_patterns_are_campaigns():
    assert inputs.HANDLE == f"^{campaigns.HANDLE.pattern}$"
    assert inputs.CURRENCY == f"^({campaigns.CURRENCY.pattern})?$"
    assert inputs.HANDLE_MAX == len("@") + 64

