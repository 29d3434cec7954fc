"""Every (from, to, actor) of both lifecycle tables, allowed and refused,
through the one `assert_transition`."""
import itertools

import pytest

from common.errors import Forbidden, PreconditionFailed
from common.fsm import assert_transition
from services.campaigns import domain
from services.campaigns.domain import CAMPAIGN_CANCELLATION, CAMPAIGN_MOVES, CASCADE_CANCELLABLE, TARGET_MOVES

ACTORS = ["advertiser", "publisher", "admin", "system", CAMPAIGN_CANCELLATION]
CAMPAIGN_STATUSES = ["draft", "active", "paused", "completed", "cancelled"]
TARGET_STATUSES = ["pending", "submitted", "approving", "approved", "rejected", "cancelled", "published", "failed",
                   "completed", "declined"]
CHANNEL_STATUSES = ["pending", "approved", "rejected", "suspended"]

# The seed's campaign table and DESIGN.md's target table, written out again
# so a change to either table has to change this test too.
CAMPAIGN_EXPECTED = {
    ("draft", "active"): {"advertiser", "admin", "system"},
    ("draft", "cancelled"): {"admin"},
    ("active", "paused"): {"advertiser", "admin"},
    ("active", "completed"): {"admin", "system"},
    ("active", "cancelled"): {"advertiser", "admin"},
    ("paused", "active"): {"advertiser", "admin"},
    ("paused", "cancelled"): {"admin"},
}
TARGET_EXPECTED = {
    ("pending", "submitted"): {"advertiser"},
    ("rejected", "submitted"): {"advertiser"},
    ("submitted", "approving"): {"system"},
    ("approving", "submitted"): {"system"},
    ("approving", "approved"): {"system"},
    ("submitted", "rejected"): {"admin"},
    ("pending", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("submitted", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("rejected", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("approving", "cancelled"): {CAMPAIGN_CANCELLATION},
    ("approved", "cancelled"): {"advertiser", "admin", CAMPAIGN_CANCELLATION},
    ("approved", "published"): {"system"},
    ("published", "completed"): {"system"},
    ("published", "failed"): {"system"},
    ("approved", "failed"): {"system"},
    ("approved", "declined"): {"publisher", "system"},  # the owner declined, or never answered
}
# docs/design.md "Who owns a channel, and who agrees".
CHANNEL_EXPECTED = {
    ("pending", "approved"): {"admin"},
    ("pending", "rejected"): {"admin"},
    ("rejected", "pending"): {"publisher"},
    ("suspended", "pending"): {"publisher"},
    ("approved", "suspended"): {"system"},
    ("suspended", "rejected"): {"admin"},
}


def cases(statuses, expected) -> list:
    return list(_cases(statuses, expected))


def _cases(statuses, expected):
    for frm, to, actor in itertools.product(statuses, statuses, ACTORS):
        if frm != to:
            yield pytest.param(frm, to, actor, expected.get((frm, to)), id=f"{frm}->{to}:{actor}")


@pytest.mark.parametrize("frm,to,actor,allowed", cases(CAMPAIGN_STATUSES, CAMPAIGN_EXPECTED))
def test_campaign_move(frm, to, actor, allowed):
    check(CAMPAIGN_MOVES, frm, to, actor, allowed)


@pytest.mark.parametrize("frm,to,actor,allowed", cases(TARGET_STATUSES, TARGET_EXPECTED))
def test_target_move(frm, to, actor, allowed):
    check(TARGET_MOVES, frm, to, actor, allowed)


@pytest.mark.parametrize("frm,to,actor,allowed", cases(CHANNEL_STATUSES, CHANNEL_EXPECTED))
def test_channel_move(frm, to, actor, allowed):
    check(domain.CHANNEL_MOVES, frm, to, actor, allowed)


def check(moves, frm, to, actor, allowed):
    if allowed is None:
        with pytest.raises(PreconditionFailed):
            assert_transition(moves, frm, to, actor)
    elif actor in allowed:
        assert_transition(moves, frm, to, actor)
    else:
        with pytest.raises(Forbidden):
            assert_transition(moves, frm, to, actor)


def test_tables_are_exactly_the_designed_ones():
    assert {k: set(v) for k, v in CAMPAIGN_MOVES.items()} == CAMPAIGN_EXPECTED
    assert {k: set(v) for k, v in TARGET_MOVES.items()} == TARGET_EXPECTED
    assert {k: set(v) for k, v in domain.CHANNEL_MOVES.items()} == CHANNEL_EXPECTED


def test_campaign_cancellation_sweeps_every_open_target():
    assert CASCADE_CANCELLABLE == {"pending", "submitted", "rejected", "approving", "approved"}


# The HTTP actions on a campaign (API.md "Campaigns"): action -> (statuses it
# applies to, status it leads to, past participle of the seed's message).
ACTIONS_EXPECTED = {
    "activate": ({"draft"}, "active", "activated"),
    "pause": ({"active"}, "paused", "paused"),
    "resume": ({"paused"}, "active", "resumed"),
    "cancel": ({"draft", "active", "paused"}, "cancelled", "cancelled"),
    "complete": ({"active"}, "completed", "completed"),
}


def test_campaign_actions_are_exactly_the_designed_ones():
    assert {action: (set(sources), wanted, past) for action, (sources, wanted, past) in domain.CAMPAIGN_ACTIONS.items()} \
        == ACTIONS_EXPECTED


def test_the_actions_make_exactly_the_moves_of_the_campaign_table():
    made = {(source, wanted) for sources, wanted, _ in domain.CAMPAIGN_ACTIONS.values() for source in sources}
    assert made == set(CAMPAIGN_MOVES)


def test_the_status_sets_read_off_the_lifecycle_are_exactly_the_designed_ones():
    assert domain.REFUNDABLE == {"approving", "approved"}  # may hold money in escrow when cancelled
    assert domain.CREATIVE_EDITABLE == {"draft", "paused"}
    assert domain.CLOSED_CAMPAIGN == {"cancelled", "completed"}
    assert set(domain.CHANNEL_STATUSES) == set(CHANNEL_STATUSES)
    assert set(domain.LIVE_CHANNEL) == {"pending", "approved", "suspended"}  # hold their chat and handle
