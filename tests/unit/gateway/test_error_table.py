"""The one table from gRPC outcomes to HTTP answers (API.md "Errors"),
whole: every row, and the answer to every gRPC status. Adding or changing a
row fails here until this test is changed on purpose."""
import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc.aio import AioRpcError, Metadata

from common import errors
from common.grpc_errors import STATUS_OF_ERROR, rich_status_trailer
from common.reasons import Reason
from gateway.errors import GENERIC_MESSAGES, HTTP_STATUS_OF, http_error_for, install_error_handlers, validation_message

S = grpc.StatusCode

# API.md "Errors", plus what a client cannot cause (5xx).
HTTP_TABLE = {
    (S.FAILED_PRECONDITION, Reason.INSUFFICIENT_FUNDS): 402,
    (S.INVALID_ARGUMENT, None): 400,
    (S.FAILED_PRECONDITION, None): 400,
    (S.OUT_OF_RANGE, None): 400,
    (S.RESOURCE_EXHAUSTED, None): 400,
    (S.UNAUTHENTICATED, None): 401,
    (S.PERMISSION_DENIED, None): 403,
    (S.NOT_FOUND, None): 404,
    (S.ABORTED, None): 409,
    (S.ALREADY_EXISTS, None): 409,
    (S.UNIMPLEMENTED, None): 501,
    (S.UNAVAILABLE, None): 503,
    (S.DEADLINE_EXCEEDED, None): 503,
    (S.CANCELLED, None): 503,
    (S.INTERNAL, None): 500,
    (S.UNKNOWN, None): 500,
    (S.DATA_LOSS, None): 500,
}


def test_the_table_is_exactly_the_contracts():
    assert HTTP_STATUS_OF == HTTP_TABLE


@pytest.mark.parametrize("status", list(S), ids=lambda s: s.name)
def test_every_grpc_status_without_a_reason_has_exactly_its_answer(status):
    """A status the table does not name (only OK: never an error) is a 500."""
    mapped = http_error_for(status, None, "details")
    assert (mapped.status, mapped.code) == (HTTP_TABLE.get((status, None), 500), status.name.lower())


def test_server_side_failures_answer_exactly_these_texts():
    assert GENERIC_MESSAGES == {500: "internal error", 501: "not implemented",
                                503: "a service behind the gateway is unavailable; try again"}


@pytest.mark.parametrize("status, reason, http, code", [
    (S.INVALID_ARGUMENT, None, 400, "invalid_argument"),
    (S.INVALID_ARGUMENT, "invalid_input", 400, "invalid_input"),
    (S.FAILED_PRECONDITION, "campaign_not_active", 400, "campaign_not_active"),
    (S.FAILED_PRECONDITION, "insufficient_funds", 402, "insufficient_funds"),
    (S.FAILED_PRECONDITION, None, 400, "failed_precondition"),
    (S.UNAUTHENTICATED, None, 401, "unauthenticated"),
    (S.PERMISSION_DENIED, "forbidden", 403, "forbidden"),
    (S.NOT_FOUND, "not_found", 404, "not_found"),
    (S.ABORTED, "conflict", 409, "conflict"),
    (S.ALREADY_EXISTS, "already_exists", 409, "already_exists"),
    (S.UNAVAILABLE, None, 503, "unavailable"),
    (S.DEADLINE_EXCEEDED, None, 503, "deadline_exceeded"),
    (S.INTERNAL, None, 500, "internal"),
    (S.UNKNOWN, None, 500, "unknown"),
])
def test_status_and_reason_map_to_http(status, reason, http, code):
    mapped = http_error_for(status, reason, "details")
    assert (mapped.status, mapped.code) == (http, code)


@pytest.mark.parametrize("status", sorted(set(STATUS_OF_ERROR.values()), key=lambda s: s.name))
def test_every_reason_a_service_can_send_reaches_the_client_as_its_code(status):
    """Whatever the refusal class, its reason is the body's code, and only
    an unavailable dependency is a 5xx: never a 500 for a refusal."""
    for reason in Reason:
        mapped = http_error_for(status, reason, "refused")
        assert mapped.code == reason
        assert (mapped.status >= 500) == (status == S.UNAVAILABLE), (status, reason, mapped.status)


def test_the_table_speaks_only_reasons_of_the_contract():
    assert [reason for _, reason in HTTP_STATUS_OF if reason is not None and not isinstance(reason, Reason)] == []


def test_insufficient_funds_reason_on_another_status_is_not_402():
    assert http_error_for(S.INVALID_ARGUMENT, "insufficient_funds", "x").status == 400


@pytest.mark.parametrize("status", [S.INTERNAL, S.UNKNOWN, S.UNAVAILABLE, S.DEADLINE_EXCEEDED])
def test_server_side_failures_hide_their_details(status):
    assert "10.0.0.7" not in http_error_for(status, None, "connect to 10.0.0.7:50051 failed").message


def test_business_refusals_keep_the_service_message():
    mapped = http_error_for(S.FAILED_PRECONDITION, "no_creatives", "Campaign must have at least one creative")
    assert mapped.message == "Campaign must have at least one creative"


def test_a_reason_that_is_not_snake_case_is_not_used_as_code():
    assert http_error_for(S.NOT_FOUND, "Not Found!", "x").code == "not_found"


def _app_raising(error: Exception) -> FastAPI:
    """An app with the gateway's error handlers installed (as create_app
    installs them) and one route that raises `error`."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    async def refused():
        raise error
    return app


async def _get(app: FastAPI, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        return await client.request(method, path)


async def test_handler_reads_the_error_info_reason_from_trailers():
    error = errors.PreconditionFailed("wallet too small", code="insufficient_funds")
    rpc_error = AioRpcError(S.FAILED_PRECONDITION, Metadata(),
                            Metadata(*rich_status_trailer(error, S.FAILED_PRECONDITION)), "wallet too small")
    response = await _get(_app_raising(rpc_error), "/refused")
    assert response.status_code == 402
    assert response.content == b'{"error":{"code":"insufficient_funds","message":"wallet too small"}}'


async def test_handler_hides_the_details_of_a_server_side_failure():
    rpc_error = AioRpcError(S.UNAVAILABLE, Metadata(), Metadata(), "connect to 10.0.0.7:50051 failed")
    response = await _get(_app_raising(rpc_error), "/refused")
    assert (response.status_code, response.json()) == (503, {"error": {
        "code": "unavailable", "message": "a service behind the gateway is unavailable; try again"}})


@pytest.mark.parametrize("method, path, status, body", [
    ("GET", "/nowhere", 404, {"code": "not_found", "message": "no such route"}),
    ("POST", "/refused", 405, {"code": "method_not_allowed", "message": "method not allowed on this route"}),
])
async def test_routing_refusals_get_the_error_body(method, path, status, body):
    response = await _get(_app_raising(RuntimeError("unused")), path, method)
    assert (response.status_code, response.json()) == (status, {"error": body})


def test_validation_message_names_the_field():
    message = validation_message([{"type": "missing", "loc": ("body", "pricePerPost"), "msg": "Field required"}])
    assert message == "pricePerPost: Field required"


def test_validation_message_for_bad_json():
    assert validation_message([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}]) \
        == "request body is not valid JSON"


def test_validation_message_of_a_rule_of_the_whole_body_says_the_rule():
    message = validation_message([{"type": "value_error", "loc": ("body",), "msg": "Value error, give at least one"}])
    assert message == "give at least one"


def test_validation_message_of_a_missing_body_asks_for_a_json_object():
    assert validation_message([{"type": "missing", "loc": ("body",), "msg": "Field required"}]) == \
        "request body must be a JSON object, sent with Content-Type: application/json"
