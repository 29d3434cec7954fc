"""Who a bearer token names: HS256 with our secret, sub a UUID, role a user
role, exp required; anything else is 401."""
import time
import uuid

import jwt
import pytest

from gateway.deps import actor_from_token
from gateway.errors import ApiError

SECRET = "unit-test-secret-of-sufficient-length-for-every-hmac-algorithm-0123456789"
USER = str(uuid.uuid4())


def mint(claims: dict, *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def valid_claims(**changes) -> dict:
    claims = {"sub": USER, "role": "advertiser", "exp": int(time.time()) + 60, **changes}
    return {k: v for k, v in claims.items() if v is not None}


def assert_401(token: str) -> None:
    with pytest.raises(ApiError) as refused:
        actor_from_token(token, SECRET)
    assert refused.value.status == 401 and refused.value.code == "unauthenticated"


@pytest.mark.parametrize("role", ["advertiser", "publisher", "admin"])
def test_valid_token_names_user_and_role(role):
    actor = actor_from_token(mint(valid_claims(role=role)), SECRET)
    assert (actor.id, actor.role) == (USER, role)


def test_subject_is_canonicalised():
    assert actor_from_token(mint(valid_claims(sub=USER.upper())), SECRET).id == USER


def test_expired_token_is_401():
    assert_401(mint(valid_claims(exp=int(time.time()) - 5)))


def test_token_without_exp_is_401():
    assert_401(mint({"sub": USER, "role": "admin"}))


def test_token_without_sub_is_401():
    assert_401(mint({"role": "admin", "exp": int(time.time()) + 60}))


def test_token_without_role_is_401():
    assert_401(mint({"sub": USER, "exp": int(time.time()) + 60}))


@pytest.mark.parametrize("role", ["system", "root", "", "ADMIN"])
def test_role_outside_user_roles_is_401(role):
    assert_401(mint(valid_claims(role=role)))


def test_non_string_role_is_401():
    assert_401(mint(valid_claims(role=["admin"])))


def test_subject_that_is_not_a_uuid_is_401():
    assert_401(mint(valid_claims(sub="user-42")))


def test_other_hmac_algorithm_is_401():
    assert_401(mint(valid_claims(), algorithm="HS512"))


def test_unsigned_token_is_401():
    assert_401(jwt.encode(valid_claims(), None, algorithm="none"))


def test_token_signed_with_another_secret_is_401():
    assert_401(mint(valid_claims(), secret="another-secret-of-sufficient-length-98765"))


def test_garbage_is_401():
    assert_401("not.a.token")


def test_a_token_accepted_before_is_refused_once_it_expires():
    token = mint(valid_claims(exp=int(time.time()) + 1))
    assert actor_from_token(token, SECRET).id == USER
    time.sleep(max(0.0, jwt.decode(token, SECRET, algorithms=["HS256"])["exp"] - time.time()) + 0.05)
    assert_401(token)


def test_a_token_accepted_under_one_secret_is_refused_under_another():
    token = mint(valid_claims())
    assert actor_from_token(token, SECRET).id == USER
    with pytest.raises(ApiError):
        actor_from_token(token, SECRET + "-rotated")


def test_exp_further_ahead_than_the_maximum_lifetime_is_401():
    assert_401(mint(valid_claims(exp=int(time.time()) + 86_400 + 120)))


def test_exp_within_a_configured_lifetime_is_accepted_and_beyond_it_refused():
    token = mint(valid_claims(exp=int(time.time()) + 7200))
    assert actor_from_token(token, SECRET, max_ttl_s=7300).id == USER
    with pytest.raises(ApiError):
        actor_from_token(token, SECRET, max_ttl_s=3600)


@pytest.mark.parametrize("exp", [10**30, 1e308, 4_102_444_800.0])
def test_huge_or_float_exp_is_401(exp):
    assert_401(mint(valid_claims(exp=exp)))


def test_exp_as_a_string_is_401():
    assert_401(mint(valid_claims(exp=str(int(time.time()) + 60))))


@pytest.mark.parametrize("role", ["advertiser", "admin"])
def test_subject_of_the_system_is_401_whatever_the_role(role):
    assert_401(mint(valid_claims(sub="00000000-0000-0000-0000-000000000000", role=role)))
