"""Divergence keys are checked names, not free strings: every key a check names is defined, and every
known divergence belongs to a defined key and profile."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conformance import profiles

CHECKS = sorted((Path(profiles.__file__).parent).glob("*.py"))


def keys_named_in(path: Path) -> set[str]:
    """String literals passed as `divergence=` or as the key argument of diverge_or_fail/known_divergence."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "divergence" and isinstance(keyword.value, ast.Constant):
                found.add(keyword.value.value)
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        if name in ("diverge_or_fail", "known_divergence") and len(node.args) > 1 \
                and isinstance(node.args[1], ast.Constant):
            found.add(node.args[1].value)
    return found


def test_every_key_a_check_names_is_defined():
    named = {key: path.name for path in CHECKS for key in keys_named_in(path)}
    assert named, "no divergence keys found: the scan itself is broken"
    undefined = {key: where for key, where in named.items() if key not in profiles.POINTS}
    assert not undefined, f"divergence keys used but not in conformance.profiles.POINTS: {undefined}"


def test_every_known_divergence_has_a_defined_key_and_the_kserve_ones_a_probe():
    for divergence in profiles.DIVERGENCES:
        assert divergence.key in profiles.POINTS
        assert set(divergence.profiles) <= set(profiles.PROFILES) - {"strict"}
        if "kserve" in divergence.profiles:
            assert divergence.probe is not None, divergence.key
        if divergence.probe is not None:  # a gRPC outcome is judged by a gRPC entry, an HTTP response by an HTTP one
            assert isinstance(divergence.probe, profiles.GrpcProbe) == divergence.key.startswith("grpc-"), \
                divergence.key


def test_a_grpc_divergence_judges_status_and_details_not_the_code_alone():
    internal = profiles.GrpcOutcome("INTERNAL", "Internal server error")
    by_key = {d.key: d for d in profiles.DIVERGENCES if "kserve" in d.profiles}
    assert by_key["grpc-infer-text"].matches(internal)
    assert not by_key["grpc-infer-text"].matches(profiles.GrpcOutcome("INTERNAL", "internal error: ValueError: x"))
    assert not by_key["grpc-infer-text"].matches(profiles.GrpcOutcome("INVALID_ARGUMENT", "Internal server error"))
    assert not by_key["grpc-infer-text"].matches(None)
    assert profiles.known_divergence("strict", "grpc-infer-text", internal) is None
    assert profiles.known_divergence("kserve", "grpc-infer-text", internal) == by_key["grpc-infer-text"].reason


def test_an_unknown_key_is_an_error_not_a_silent_failure():
    with pytest.raises(KeyError, match="unknown divergence key"):
        profiles.diverge_or_fail("kserve", "v2-no-such-key", None, "message")
