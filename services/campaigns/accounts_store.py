"""Telegram accounts bound to users, the single-use codes that bind them,
and the updates the bot handled (docs/design.md, "Who owns a channel, and
who agrees"). Every function runs inside the caller's unit of work."""
import json

import sqlalchemy as sa

from common.db import UnitOfWork

_ACCOUNT = sa.text("SELECT user_id, telegram_user_id, username, linked_at FROM telegram_accounts WHERE user_id = :user")

_NEW_CODE = sa.text("""
    INSERT INTO telegram_link_codes (code, user_id, expires_at) VALUES (:code, :user, :expires_at)""")

# The code consumed, if it is unused and not expired; the user it binds.
_USE_CODE = sa.text("""
    UPDATE telegram_link_codes SET used_at = :now, used_by = :telegram_user
     WHERE code = :code AND used_at IS NULL AND expires_at > :now
    RETURNING user_id""")

# The code as it is, to say why it bound nothing.
_CODE = sa.text("SELECT user_id, expires_at, used_at FROM telegram_link_codes WHERE code = :code")

# The account of another user: the binding is refused.
_ACCOUNT_HOLDER = sa.text("SELECT user_id FROM telegram_accounts WHERE telegram_user_id = :telegram_user")

# A user binds one account: a new one replaces the old. The unique index
# on telegram_user_id refuses an account another user holds (nothing
# written: the caller checked first, and a racing binding loses here).
_BIND = sa.text("""
    INSERT INTO telegram_accounts (user_id, telegram_user_id, username, linked_at)
    VALUES (:user, :telegram_user, :username, :now)
    ON CONFLICT (user_id) DO UPDATE SET telegram_user_id = EXCLUDED.telegram_user_id,
                                        username = EXCLUDED.username, linked_at = EXCLUDED.linked_at
    RETURNING user_id""")

_UNBIND = sa.text("DELETE FROM telegram_accounts WHERE user_id = :user")

_RECORD_UPDATE = sa.text("""
    INSERT INTO bot_updates (update_id, kind) VALUES (:update_id, :kind) ON CONFLICT DO NOTHING
    RETURNING update_id""")

_UPDATE_ANSWER = sa.text("SELECT answer FROM bot_updates WHERE update_id = :update_id AND answered_at IS NULL")

_SET_ANSWER = sa.text("UPDATE bot_updates SET answer = CAST(:answer AS jsonb) WHERE update_id = :update_id")

_ANSWERED = sa.text("UPDATE bot_updates SET answered_at = now() WHERE update_id = :update_id")

_NEXT_OFFSET = sa.text("SELECT COALESCE(max(update_id) + 1, 0) FROM bot_updates")

_UNANSWERED = sa.text("""
    SELECT update_id, answer FROM bot_updates WHERE answer IS NOT NULL AND answered_at IS NULL
     ORDER BY update_id LIMIT :limit""")


async def account_of(uow: UnitOfWork, user_id: str):
    return (await uow.execute(_ACCOUNT, {"user": user_id})).one_or_none()


async def new_code(uow: UnitOfWork, *, code: str, user_id: str, expires_at) -> None:
    await uow.execute(_NEW_CODE, {"code": code, "user": user_id, "expires_at": expires_at})


async def use_code(uow: UnitOfWork, code: str, *, telegram_user_id: int, now):
    """The user the code binds, consuming it; None when it cannot be used."""
    return (await uow.execute(_USE_CODE, {"code": code, "telegram_user": telegram_user_id, "now": now})).scalar()


async def code(uow: UnitOfWork, code: str):
    return (await uow.execute(_CODE, {"code": code})).one_or_none()


async def holder_of(uow: UnitOfWork, telegram_user_id: int):
    return (await uow.execute(_ACCOUNT_HOLDER, {"telegram_user": telegram_user_id})).scalar()


async def bind(uow: UnitOfWork, *, user_id: str, telegram_user_id: int, username: str | None, now) -> None:
    await uow.execute(_BIND, {"user": user_id, "telegram_user": telegram_user_id, "username": username, "now": now})


async def unbind(uow: UnitOfWork, user_id: str) -> bool:
    return (await uow.execute(_UNBIND, {"user": user_id})).rowcount == 1


async def record_update(uow: UnitOfWork, update_id: int, kind: str) -> bool:
    """False when the update was handled before (a delivery again)."""
    return (await uow.execute(_RECORD_UPDATE, {"update_id": update_id, "kind": kind})).scalar() is not None


async def unanswered(uow: UnitOfWork, update_id: int) -> dict | None:
    """The answer a handled update still owes, if any."""
    value = (await uow.execute(_UPDATE_ANSWER, {"update_id": update_id})).scalar()
    return json.loads(value) if isinstance(value, str) else value


async def set_answer(uow: UnitOfWork, update_id: int, answer: dict) -> None:
    await uow.execute(_SET_ANSWER, {"update_id": update_id, "answer": json.dumps(answer)})


async def answered(uow: UnitOfWork, update_id: int) -> None:
    await uow.execute(_ANSWERED, {"update_id": update_id})


async def next_offset(uow: UnitOfWork) -> int:
    return (await uow.execute(_NEXT_OFFSET)).scalar()


async def unanswered_updates(uow: UnitOfWork, limit: int = 20) -> list:
    return (await uow.execute(_UNANSWERED, {"limit": limit})).all()
