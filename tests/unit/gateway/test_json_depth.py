"""How deep a JSON body nests, counted before any parser sees it: arrays
and objects count, brackets inside strings (escaped quotes included) do not."""
import json

import pytest

from gateway.limits import MAX_JSON_DEPTH, too_deep


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_at_the_limit_passes_and_one_more_is_too_deep():
    assert not too_deep(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)
    assert too_deep(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)


def test_objects_and_arrays_count_alike():
    body = json.dumps(json.loads('{"a":' * 20 + "[" * 20 + "1" + "]" * 20 + "}" * 20)).encode()
    assert too_deep(body, 32) and not too_deep(body, 40)


@pytest.mark.parametrize("text", ["[" * 100, "{" * 100, '\\"' + "[" * 100, "]" * 50 + "[" * 100])
def test_brackets_inside_strings_do_not_count(text):
    assert not too_deep(json.dumps({"name": text, "creatives": [{"text": text}]}).encode(), 4)


def test_many_siblings_are_not_depth():
    assert not too_deep(b"[" + b",".join([b"[]"] * 100_000) + b"]", 2)

