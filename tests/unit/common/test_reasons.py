"""Machine reasons are defined once, in adtech.errors.v1.Reason, and
common.reasons is the one place that maps them to the snake_case strings on
the wire; every refusal speaks a reason from there, and no module of ours
types one as a literal."""
import ast
import importlib
import pathlib
import re

import pytest

from adtech.errors.v1 import reasons_pb2
from common import errors
from common.reasons import Reason

ROOT = pathlib.Path(__file__).resolve().parents[3]
PROTO = ROOT / "protos" / "adtech" / "errors" / "v1" / "reasons.proto"
SOURCES = ("common", "services", "gateway", "operations")
MAPPING = "common/reasons.py"
DOMAINS = ("services.campaigns.domain", "services.moderation.domain", "services.payments.domain")

# The HTTP contract the web frontend depends on (API.md "Errors"): renaming
# an enum value changes its wire string, a breaking change.
WIRE_STRINGS = {
    "invalid_input", "not_found", "forbidden", "unauthenticated", "precondition_failed", "conflict",
    "already_exists", "unavailable", "invalid_transition", "target_being_approved", "no_creatives",
    "invalid_dates", "campaign_not_active", "channel_not_approved", "scheduled_too_soon", "campaign_closed",
    "target_not_submitted", "target_cancelled", "target_not_reserved", "decision_released", "insufficient_funds",
    "escrow_closed", "escrow_exists", "idempotency_key_reused", "escrow_not_found", "decision_reused",
    "approve_refused", "approve_failed", "method_not_allowed", "http_error", "internal",
    "slot_taken", "beyond_booking_horizon", "invalid_time", "wallet_not_found", "campaign_has_open_targets",
    "withdrawal_not_pending", "withdrawal_not_found",
    "post_job_started", "post_job_not_in_review", "channel_cannot_post", "post_already_out",
    "telegram_not_linked", "channel_not_found", "not_channel_admin", "channel_already_listed",
    "channel_ownership_lost", "post_job_not_awaiting", "answer_deadline_passed", "currency_not_supported",
}

# Strings that equal a reason but are not one.
NOT_REASONS = {
    ("gateway/routes/health.py", "unavailable"): "the readiness body's status",
    ("services/campaigns/usecases/targets.py", "target_cancelled"): "an audit action",
}


def test_every_proto_value_but_unspecified_is_a_reason_and_round_trips():
    for name, number in reasons_pb2.Reason.items():
        if number == reasons_pb2.REASON_UNSPECIFIED:
            continue
        reason = Reason[name.removeprefix("REASON_")]
        assert reason == name.removeprefix("REASON_").lower()
        assert Reason(str(reason)) is reason
        assert reasons_pb2.Reason.Value("REASON_" + reason.name) == number
    assert len(Reason) == len(reasons_pb2.Reason.keys()) - 1


def test_the_wire_strings_are_the_http_contract():
    assert {str(reason) for reason in Reason} == WIRE_STRINGS


def test_an_unknown_reason_is_refused():
    with pytest.raises(ValueError):
        Reason("no_such_reason")
    with pytest.raises(AttributeError):
        getattr(Reason, "NO_SUCH_REASON")


def test_a_reason_is_its_wire_string():
    assert Reason.INSUFFICIENT_FUNDS == "insufficient_funds"
    assert f"{Reason.INSUFFICIENT_FUNDS}" == "insufficient_funds"
    assert {"insufficient_funds": 402}[Reason.INSUFFICIENT_FUNDS] == 402


def test_every_value_of_the_proto_enum_is_documented():
    lines = PROTO.read_text().splitlines()
    undocumented = [line.strip() for before, line in zip(lines, lines[1:])
                    if re.match(r"\s*REASON_\w+ = \d+;", line) and not before.strip().startswith("//")]
    assert undocumented == []


def all_subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *all_subclasses(direct))]


def test_every_refusal_class_speaks_a_reason():
    for module in DOMAINS:
        importlib.import_module(module)
    classes = [errors.DomainError, *all_subclasses(errors.DomainError)]
    assert [cls.__qualname__ for cls in classes if not isinstance(cls.code, Reason)] == []


def docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def is_text(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def gives_code(node: ast.AST) -> bool:
    """An assignment of a string to a name `code` (a class attribute)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return False
    return is_text(node.value) and any(isinstance(target, ast.Name) and target.id == "code" for target in targets)


def reason_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in the module that is a reason's wire
    string, and of every string given as a `code` (a keyword argument, a
    class attribute, a dict entry), which would be a reason typed by hand."""
    tree = ast.parse(source)
    skip, found = docstrings(tree), []
    for node in ast.walk(tree):
        if is_text(node) and id(node) not in skip and node.value in WIRE_STRINGS:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.keyword) and node.arg == "code" and is_text(node.value):
            found.append((node.value.lineno, node.value.value))
        elif gives_code(node):
            found.append((node.lineno, node.value.value))
        elif isinstance(node, ast.Dict):
            found += [(value.lineno, value.value) for key, value in zip(node.keys, node.values)
                      if is_text(key) and key.value == "code" and is_text(value)]
    return sorted(set(found))


def test_the_scan_finds_reasons_typed_by_hand_but_not_in_docstrings():
    source = (
        '"""Refuses with insufficient_funds."""\n'
        'class Late(PreconditionFailed):\n'
        '    """Too late."""\n'
        '    code = "too_late"\n'
        'def f():\n'
        '    raise PreconditionFailed("x", code="brand_new")\n'
        'DETAIL = {"code": "target_gone", "message": "gone"}\n'
        'STATUS = "escrow_closed"\n'
        'OK = Reason.ESCROW_CLOSED\n')
    assert reason_literals(source) == [(4, "too_late"), (6, "brand_new"), (7, "target_gone"), (8, "escrow_closed")]


def test_no_module_types_a_reason_as_a_literal():
    offenders, allowed_seen = [], set()
    for source in SOURCES:
        for path in sorted((ROOT / source).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative == MAPPING:
                continue
            for line, text in reason_literals(path.read_text()):
                if (relative, text) in NOT_REASONS:
                    allowed_seen.add((relative, text))
                else:
                    offenders.append(f"{relative}:{line} {text!r}: use common.reasons.Reason")
    assert offenders == []
    assert set(NOT_REASONS) - allowed_seen == set(), "an exception no longer applies: remove it from NOT_REASONS"
