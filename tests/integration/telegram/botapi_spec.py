"""Checks a Bot API answer against the specification kept in
botapi-spec/botapi.json (its README says which Bot API and how to update
it): every required field present, every field of the right type, no field
the specification does not know, no null, constants and kinds as listed.

`problems(method, body)` gives every departure, each with the path to it
("result.user.can_send_welcome_messages: missing"), so a failing test says
what to fix."""
import json
import pathlib
import re

SPEC = json.loads((pathlib.Path(__file__).parent / "botapi-spec" / "botapi.json").read_text())
ARRAY = re.compile(r"^Array of (.+)$")
# Fields the real Bot API server sends beyond its documentation: the old
# name of a renamed right, kept for old clients (the sandbox sends it too).
UNDOCUMENTED = {"ChatMemberAdministrator": {"can_manage_voice_chats": {"type": "Boolean", "required": False}}}
SCALARS = {
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
}


def problems(method: str, body) -> list[str]:
    """What is wrong with `body`, the whole answer to `method` (the
    envelope included); [] when it is as the specification says."""
    if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
        return [f"not a Bot API answer: {body!r:.200}"]
    if not body["ok"]:
        found = _extra(body, {"ok", "error_code", "description", "parameters"}, "")
        found += [] if SCALARS["Integer"](body.get("error_code")) else ["error_code: not an Integer"]
        found += [] if SCALARS["String"](body.get("description")) else ["description: not a String"]
        if "parameters" in body:
            found += check(body["parameters"], "ResponseParameters", "parameters")
        return found
    returns = SPEC["methods"][method]["returns"]
    return _extra(body, {"ok", "result"}, "") + check(body.get("result"), returns, "result")


def check(value, expression: str, path: str) -> list[str]:
    """Departures of `value` from a type as the docs write it ("Integer",
    "Array of MessageEntity", "Message or True", "ChatMember")."""
    alternatives = expression.split(" or ")
    if len(alternatives) > 1:
        return _best([check(value, alternative, path) for alternative in alternatives])
    array = ARRAY.match(expression)
    if array:
        if not isinstance(value, list):
            return [f"{path}: not an Array ({_shape(value)})"]
        return [p for i, item in enumerate(value) for p in check(item, array.group(1), f"{path}[{i}]")]
    if expression in SCALARS:
        return [] if SCALARS[expression](value) else [f"{path}: not {expression} ({_shape(value)})"]
    kind = SPEC["types"].get(expression)
    if kind is None:
        return [f"{path}: the specification has no type {expression}"]
    if "one_of" in kind:  # ChatMember, MaybeInaccessibleMessage, ...: one of its kinds fits
        return _best([check(value, member, f"{path}<{member}>") for member in kind["one_of"]])
    if not isinstance(value, dict):
        return [f"{path}: not a {expression} object ({_shape(value)})"]
    fields = {**kind["fields"], **UNDOCUMENTED.get(expression, {})}
    found = _extra(value, set(fields), path)
    for name, spec in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in value:
            if spec["required"]:
                found.append(f"{where}: missing")
            continue
        if value[name] is None:
            found.append(f"{where}: null (Telegram leaves an absent field out)")
            continue
        found += check(value[name], spec["type"], where)
        if "const" in spec and value[name] != spec["const"]:
            found.append(f"{where}: {value[name]!r}, always {spec['const']!r}")
        if "enum" in spec and value[name] not in spec["enum"]:
            found.append(f"{where}: {value[name]!r}, not one of {spec['enum']}")
    return found


def _extra(value: dict, known: set[str], path: str) -> list[str]:
    return [f"{path}.{name}: not in the specification" if path else f"{name}: not in the specification"
            for name in value if name not in known]


def _best(candidates: list[list[str]]) -> list[str]:
    """A union fits when one alternative does; else the nearest one's problems."""
    return [] if any(not found for found in candidates) else min(candidates, key=len)


def _shape(value) -> str:
    return f"{type(value).__name__} {value!r:.60}"
