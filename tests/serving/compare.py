"""Compare served answers with the reference: exact for ids and structure, a tolerance for floats
(a different batch composition may move the last bits of a float, and so a 4th decimal place)."""

from __future__ import annotations

import ast
import json
import math


def as_json(value):
    """What the reference looks like after a JSON round trip (int keys become strings)."""
    return json.loads(json.dumps(value))


def close(a, b, tol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:  # fill-mask probabilities are 4-place strings
            return math.isclose(float(a), float(b), abs_tol=tol)
        except ValueError:
            return False
    return a == b


def parse_bytes_element(element: str):
    """A V2 BYTES element holding KServe's `str(dict)` or a decoded token."""
    try:
        return ast.literal_eval(element)
    except (ValueError, SyntaxError):
        return element


def flatten(value):
    if isinstance(value, list):
        return [x for item in value for x in flatten(item)]
    return [value]


def shape_of(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape
