"""The gateway's own check for schemathesis (loaded as its hooks by
tests/e2e/schemathesis.toml): well-formed input is never refused as
malformed. Schemathesis' positive_data_acceptance accepts a 400 there,
because a 400 also answers a well-formed request the state refuses (API.md:
a precondition of the domain fails, e.g. activating a campaign without a
creative); this check keeps the half a document can promise: a request the
document calls valid never gets `invalid_input`, save for a cursor that is
not one the gateway handed out (opaque: no schema can say which are), money
written as a float and a URL whose host is not a hostname (below)."""
import schemathesis


# What a JSON Schema cannot say, so a generated "valid" request may break it
# and be refused as malformed: money written as a float (1500.0 is an
# "integer" to JSON Schema; docs/api.md: a float is 400), and a URL whose
# host is no hostname (the document's pattern does not parse hosts).
URL_HOST_RULE = "must be an http(s) URL with a valid host"


def _holds_a_float(value) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_holds_a_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_a_float(v) for v in value)
    return False


@schemathesis.check
def well_formed_input_is_not_refused_as_malformed(ctx, response, case):
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    error = response.json()["error"]
    if error["code"] != "invalid_input" or (case.query or {}).get("cursor"):
        return None
    if _holds_a_float(case.body) or URL_HOST_RULE in error["message"]:
        return None
    raise AssertionError(f"A request the document calls valid was refused as malformed: {response.text}")
