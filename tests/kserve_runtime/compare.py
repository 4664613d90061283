"""Compare two JSON answers leaf by leaf: equal structure, equal strings, numbers within a tolerance.

A string leaf that is a number ("0.1234": KServe's fill-mask probabilities) or a Python literal (a V2
BYTES element holding `str(dict)`) is compared by value, so 4-place rounding on either side is judged by
the tolerance and not by the text.
"""

from __future__ import annotations

import ast
from typing import Any


def _as_value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1] in "[{(":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
    return text


def differences(got: Any, expected: Any, tolerance: float, path: str = "$", limit: int = 5) -> list[str]:
    """Where `got` and `expected` differ ([] when equal within `tolerance`)."""
    found: list[str] = []
    _walk(got, expected, tolerance, path, found, limit)
    return found


def _walk(got: Any, expected: Any, tolerance: float, path: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if isinstance(got, str) and isinstance(expected, str) and got != expected:
        got, expected = _as_value(got), _as_value(expected)
        if isinstance(got, str) or isinstance(expected, str):
            found.append(f"{path}: {got!r:.80} != {expected!r:.80}")
            return
    if isinstance(got, bool) or isinstance(expected, bool) or got is None or expected is None:
        if type(got) is not type(expected) or got != expected:
            found.append(f"{path}: {got!r:.80} != {expected!r:.80}")
        return
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        exact = isinstance(got, int) and isinstance(expected, int)
        if (got != expected) if exact else abs(got - expected) > tolerance:
            found.append(f"{path}: {got!r} != {expected!r} (tolerance {tolerance})")
        return
    if isinstance(got, dict) and isinstance(expected, dict):
        if set(got) != set(expected):
            found.append(f"{path}: keys {sorted(map(str, got))[:8]} != {sorted(map(str, expected))[:8]}")
            return
        for key in expected:
            _walk(got[key], expected[key], tolerance, f"{path}.{key}", found, limit)
        return
    if isinstance(got, list) and isinstance(expected, list):
        if len(got) != len(expected):
            found.append(f"{path}: {len(got)} items != {len(expected)}")
            return
        for index, (a, b) in enumerate(zip(got, expected)):
            _walk(a, b, tolerance, f"{path}[{index}]", found, limit)
        return
    if type(got) is not type(expected) or got != expected:
        found.append(f"{path}: {type(got).__name__} {got!r:.60} != {type(expected).__name__} {expected!r:.60}")
