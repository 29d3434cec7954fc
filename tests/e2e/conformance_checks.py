"""The gateway's own check for schemathesis (loaded as its hooks by
tests/e2e/schemathesis.toml): well-formed input is never refused as
malformed. Schemathesis' positive_data_acceptance accepts a 400 there,
because a 400 also answers a well-formed request the state refuses (API.md:
a precondition of the domain fails, e.g. activating a campaign without a
creative); this check keeps the half a document can promise: a request the
document calls valid never gets `invalid_input`, save for a cursor that is
not one the gateway handed out (opaque: no schema can say which are)."""
import schemathesis


@schemathesis.check
def well_formed_input_is_not_refused_as_malformed(ctx, response, case):
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 400:
        return None
    code = response.json()["error"]["code"]
    if code == "invalid_input" and not (case.query or {}).get("cursor"):
        raise AssertionError(f"A request the document calls valid was refused as malformed: {response.text}")
    return None
