"""Campaigns' settings beyond its service's own: the Telegram Bot API the
channel adapter talks to, and publication's windows (read by the
campaigns service, which checks channels at approval, and by the
publisher worker, which publishes and proves posts)."""
from pydantic import Field, model_validator

from common.settings import CAMPAIGNS_DATABASE, CommonSettings, ConfigError, checked_secret
from services.campaigns.domain import ConsentRules
from services.campaigns.publication import PublicationPolicy
from services.campaigns.telegram import TelegramChannels

BOT_TOKEN_HELP = ("TELEGRAM_BOT_TOKEN is required: the bot's token from @BotFather "
                  "(`adtech run` starts the local Bot API sandbox and sets it when unset)")


class TelegramSettings(CommonSettings):
    campaigns_database: str = Field(default=CAMPAIGNS_DATABASE, description="Database name of the campaigns service")
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        description="Base URL of the Telegram Bot API (`adtech run` points it at its sandbox when no token is set)")
    telegram_bot_token: str | None = Field(
        default=None, description="The bot's token (a secret, no default; `adtech run` without it starts the Bot API sandbox)")
    telegram_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Timeout of each phase (connect, send, read) of one Bot API call, in seconds")
    telegram_link_ttl_s: int = Field(
        default=600, ge=30, le=86400, description="How long a Telegram link code (POST /api/me/telegram/link) stays valid, in seconds")
    bot_poll_timeout_s: int = Field(
        default=25, ge=0, le=50, description="The bot's long polling: how long one getUpdates waits for an update, in seconds")

    def bot_token(self) -> str:
        if not self.telegram_bot_token:
            raise ConfigError(BOT_TOKEN_HELP)
        return checked_secret("TELEGRAM_BOT_TOKEN", self.telegram_bot_token)

    def channel_adapter(self) -> TelegramChannels:
        """The Bot API client these settings describe (not started)."""
        return TelegramChannels(self.telegram_api_url, self.bot_token(), timeout_s=self.telegram_timeout_s)


class PublisherSettings(TelegramSettings):
    publish_deadline_s: float = Field(
        default=3600, gt=0, le=7 * 86400,
        description="A post not out by scheduledAt + this many seconds is a no-show: the advertiser is refunded")
    post_checks: int = Field(
        default=2, ge=0, le=100, description="Proof checks at random times inside the retention window (plus one at its end)")
    post_retention_s: float = Field(
        default=86400, gt=0, le=365 * 86400,
        description="How long a post must stay up before the publisher is paid, in seconds")
    publisher_poll_ms: int = Field(default=1000, ge=10, le=60_000, description="How often the publisher worker looks for due jobs")
    publisher_lease_ms: int = Field(
        default=60_000, ge=100, le=3_600_000, description="How long a worker holds a claimed job without renewing it")
    publisher_backoff_base_ms: int = Field(default=2000, ge=1, description="First retry delay after a transient Bot API error")
    publisher_backoff_cap_ms: int = Field(default=300_000, ge=1, description="Longest retry delay after transient Bot API errors")
    publisher_answer_s: int = Field(
        default=86400, ge=1, le=30 * 86400,
        description="How long a channel owner has to accept or decline an approved post, in seconds after the approval")
    publisher_answer_lead_s: int = Field(
        default=300, ge=0, le=86400,
        description="A channel owner's answer is due at the latest this many seconds before the post's time")

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self):
        # A lease that runs out while a call is under way would send a live
        # worker's job to review.
        if self.publisher_lease_ms < 4 * self.telegram_timeout_s * 1000:
            raise ValueError("PUBLISHER_LEASE_MS must be at least 4 x TELEGRAM_TIMEOUT_S (a call's phases and its record)")
        return self

    def consent_rules(self) -> ConsentRules:
        return ConsentRules(answer_s=self.publisher_answer_s, lead_s=self.publisher_answer_lead_s)

    def publication_policy(self) -> PublicationPolicy:
        return PublicationPolicy(deadline_s=self.publish_deadline_s, checks=self.post_checks,
                                 retention_s=self.post_retention_s, lease_s=self.publisher_lease_ms / 1000,
                                 poll_s=self.publisher_poll_ms / 1000,
                                 backoff_base_s=self.publisher_backoff_base_ms / 1000,
                                 backoff_cap_s=self.publisher_backoff_cap_ms / 1000)
