"""The differential comparison itself can fail: each kind of difference is reported."""

from __future__ import annotations

import pytest

from tests.kserve_runtime.compare import differences


@pytest.mark.parametrize("got, expected", [
    ({"predictions": [1]}, {"predictions": [1], "outputs": []}),  # a missing key (the V1 offsets bug)
    ([[1, 2]], [[1, 2, 3]]),  # a shorter row
    ([0.5], [0.5003]),  # a float beyond the tolerance
    (["0.1234"], ["0.1240"]),  # KServe's fill-mask probability strings, by value
    (["{0: 0.1, 1: 0.9}"], ["{0: 0.9, 1: 0.1}"]),  # a V2 BYTES str(dict), by value
    (["paris"], ["berlin"]),  # a decoded token
    ([None], [0]), ([True], [1]), ({"datatype": "INT64"}, {"datatype": "BYTES"}),
])
def test_each_difference_is_reported(got, expected):
    assert differences(got, expected, 1e-4)


@pytest.mark.parametrize("got, expected", [
    (["0.1234"], ["0.1235"]),  # one rounding unit apart
    ({"a": [1.0, 2.00005]}, {"a": [1, 2.0]}),
    (["{0: '0.1234'}"], ["{0: '0.1235'}"]),
])
def test_values_within_the_tolerance_are_equal(got, expected):
    assert differences(got, expected, 1.0001e-4) == []
