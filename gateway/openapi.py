"""The served OpenAPI document, made to be the API: FastAPI's document of
the routes, with each route's refusals from gateway/refusals.py as its
error responses (one error body schema), and without the 422 FastAPI adds
to every route with inputs: the gateway answers malformed input with 400
(gateway/errors.py), never 422."""
import itertools

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from gateway.errors import ErrorBody
from gateway.refusals import REFUSALS, Refusal, of_every_route

SCHEMAS = "#/components/schemas/"
# FastAPI's schemas of its 422 body: nothing refers to them once it is gone.
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def operation_id(route: APIRoute) -> str:
    """The route's name: the key of its row in REFUSALS."""
    return route.name


def openapi_document(app: FastAPI) -> dict:
    """Built once, when first asked (create_app asks at once, so a route
    without a row in REFUSALS stops the gateway before it serves)."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes, separate_input_output_schemas=app.separate_input_output_schemas)
        _document_refusals(document)
        app.openapi_schema = document
    return app.openapi_schema


def _document_refusals(document: dict) -> None:
    schemas = document["components"]["schemas"]
    for name in VALIDATION_SCHEMAS:
        del schemas[name]
    error = ErrorBody.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(error.pop("$defs"))
    schemas[ErrorBody.__name__] = error
    documented = set()
    for method, operation in _operations(document):
        name = operation["operationId"]
        if name not in REFUSALS:
            raise LookupError(f"route {name} has no row in gateway.refusals.REFUSALS")
        documented.add(name)
        responses = operation["responses"]
        responses.pop("422", None)
        refusals_of_route = (*REFUSALS[name], *of_every_route(method))
        for status, refusals in itertools.groupby(sorted(refusals_of_route, key=lambda r: r.status),
                                                  key=lambda r: r.status):
            responses[str(status)] = _error_response(list(refusals))
        operation["responses"] = dict(sorted(responses.items()))
    if stale := set(REFUSALS) - documented:
        raise LookupError(f"rows of gateway.refusals.REFUSALS name no route: {sorted(stale)}")


def _operations(document: dict):
    for path_item in document["paths"].values():
        yield from path_item.items()


def _error_response(refusals: list[Refusal]) -> dict:
    """One status: the error body, and each code it comes with and when."""
    whens: dict[str, list[str]] = {}
    for refusal in refusals:
        whens.setdefault(refusal.code, []).append(refusal.when)
    lines = [f"- `{code}`: {'; '.join(texts)}" for code, texts in whens.items()]
    return {"description": "Refused; `error.code` is one of:\n\n" + "\n".join(lines),
            "content": {"application/json": {"schema": {"$ref": SCHEMAS + ErrorBody.__name__}}}}
