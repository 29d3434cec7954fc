"""Lifecycle tables are data: {(from, to): {actors allowed}}. Every state
change goes through `assert_transition`."""
from collections.abc import Iterable, Mapping

from common.errors import Forbidden, PreconditionFailed
from common.reasons import Reason

Moves = Mapping[tuple[str, str], Iterable[str]]


def assert_transition(moves: Moves, current: str, wanted: str, actor: str, *, subject: str = "Transition") -> None:
    """Raises PreconditionFailed when the table has no such move, Forbidden
    when it has it but not for this actor."""
    allowed = moves.get((current, wanted))
    if allowed is None:
        raise PreconditionFailed(f"{subject} from {current} to {wanted} is not allowed", code=Reason.INVALID_TRANSITION)
    if actor not in allowed:
        raise Forbidden(f"{subject} from {current} to {wanted} is not allowed for {actor}")
