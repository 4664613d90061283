"""Unit tests of the suite's pure parts: tensor rules, row parsing, profiles, golden files, report."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conformance import semantics
from conformance.golden import (
    EXPECTATIONS_DIR,
    ExpectationError,
    compare_case,
    golden_case_from_reference,
    load_expectations,
    select_cases,
)
from conformance.profiles import PROFILES, known_divergence
from conformance.report import render_markdown, report_paths


def tensor(shape, datatype, data, name="output-0"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_element_count_must_equal_shape_product():
    semantics.validate_v2_tensor(tensor([2, 1, 3], "INT64", [0, 1, 2, 3, 4, 5]))
    semantics.validate_v2_tensor(tensor([2, 1, 3], "INT64", [[[0, 1, 2]], [[3, 4, 5]]]))  # nested is allowed
    with pytest.raises(semantics.Violation, match="5 elements but shape"):
        semantics.validate_v2_tensor(tensor([2, 1, 3], "INT64", [0, 1, 2, 3, 4]))


@pytest.mark.parametrize("datatype, value, ok", [
    ("INT64", 3, True), ("INT64", 3.5, False), ("INT64", "3", False), ("INT64", True, False),
    ("UINT8", 256, False), ("UINT8", -1, False), ("FP32", 1, True), ("FP32", "x", False),
    ("BYTES", "text", True), ("BYTES", 1, False), ("BOOL", True, True), ("BOOL", 1, False),
])
def test_values_must_match_datatype(datatype, value, ok):
    assert semantics.value_matches_datatype(value, datatype) is ok


def test_unknown_datatype_and_bad_shape_are_violations():
    with pytest.raises(semantics.Violation, match="not an OIP datatype"):
        semantics.validate_tensor_header(tensor([1], "STRING", ["a"]), "t")
    with pytest.raises(semantics.Violation, match="non-negative integers"):
        semantics.validate_tensor_header(tensor([-1], "BYTES", ["a"]), "t")


def test_token_classification_rows_v1_and_v2_agree():
    v1 = [[[0, 3, 0, 0]], [[0, 7, 0, 0]]]
    v2 = tensor([2, 1, 4], "INT64", [0, 3, 0, 0, 0, 7, 0, 0])
    rows1 = semantics.v1_rows("token_classification", "default", v1, 2)
    rows2 = semantics.v2_rows("token_classification", "default", v2, 2)
    assert rows1 == rows2 == [[0, 3, 0, 0], [0, 7, 0, 0]]


def test_token_rows_must_be_nested_and_padded():
    with pytest.raises(semantics.Violation, match="1xS"):
        semantics.v1_rows("token_classification", "default", [[0, 3, 0]], 1)
    with pytest.raises(semantics.Violation, match="padded"):
        semantics.v1_rows("token_classification", "default", [[[0, 3, 0]], [[0, 3]]], 2)
    with pytest.raises(semantics.Violation, match=r"\[B,1,S\]"):
        semantics.v2_rows("token_classification", "default", tensor([2, 3], "INT64", [0] * 6), 2)


def test_probability_dicts_parse_from_v1_json_and_v2_repr():
    v1 = [{"0": 0.0012, "1": 0.9988}]
    v2 = tensor([1], "BYTES", ["{0: 0.0012, 1: 0.9988}"])
    rows = semantics.v1_rows("sequence_classification", "probabilities", v1, 1)
    assert rows == semantics.v2_rows("sequence_classification", "probabilities", v2, 1) == [{0: 0.0012, 1: 0.9988}]
    semantics.check_row_semantics("sequence_classification", "probabilities", rows, num_labels=2)
    with pytest.raises(semantics.Violation, match="sum to"):
        semantics.check_row_semantics("sequence_classification", "probabilities", [{0: 0.5, 1: 0.6}], num_labels=2)
    with pytest.raises(semantics.Violation, match="not a Python dict literal"):
        semantics.v2_rows("sequence_classification", "probabilities", tensor([1], "BYTES", ["{0: oops"]), 1)


def test_fill_mask_scores_merge_one_entry_dicts():
    v1 = [[[{"0": "0.2500"}, {"1": "0.7500"}]]]
    rows = semantics.v1_rows("fill_mask", "probabilities", v1, 1)
    assert rows == [[{0: 0.25, 1: 0.75}]]
    semantics.check_row_semantics("fill_mask", "probabilities", rows, vocab_size=2)


def test_label_range_and_token_length_semantics():
    with pytest.raises(semantics.Violation, match="outside"):
        semantics.check_row_semantics("token_classification", "default", [[0, 9]], num_labels=9)
    with pytest.raises(semantics.Violation, match="tokenizes to 5"):
        semantics.check_row_semantics("token_classification", "default", [[0, 1, 0]], token_lengths=[5, 3])


def test_compare_rows_prefix_and_tolerance():
    assert semantics.compare_rows("token_classification", "default", [[0, 3, 0, 0]], [[0, 3, 0]], prefix_ok=True) == []
    assert semantics.compare_rows("token_classification", "default", [[0, 3, 0, 0]], [[0, 4, 0]], prefix_ok=True)
    assert semantics.compare_rows("sequence_classification", "probabilities", [{0: 0.5, 1: 0.5}],
                                  [{0: 0.501, 1: 0.499}]) == []
    assert semantics.compare_rows("sequence_classification", "probabilities", [{0: 0.5, 1: 0.5}],
                                  [{0: 0.6, 1: 0.4}])


def test_profiles_match_only_the_known_behaviour():
    response_422 = httpx.Response(422, json={"detail": []})
    response_500 = httpx.Response(500, json={"error": "boom"})
    assert known_divergence("kserve", "v2-malformed-json", response_422)
    assert known_divergence("kserve", "v2-malformed-json", response_500) is None  # a 500 is not KServe's known 422
    assert known_divergence("strict", "v2-malformed-json", response_422) is None
    assert known_divergence("triton", "v2-health-body", httpx.Response(200, content=b""))
    assert known_divergence("kserve", "v2-health-body", httpx.Response(200, content=b"")) is None
    assert set(PROFILES) == {"strict", "kserve", "mlserver", "triton"}


def test_shipped_expectation_files_load_and_select_by_model():
    cases = load_expectations(EXPECTATIONS_DIR)
    models = {c.model for c in cases}
    assert {"dslim/bert-base-NER", "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            "google-bert/bert-base-uncased", "textattack/bert-base-uncased-yelp-polarity",
            "dbmdz/bert-large-cased-finetuned-conll03-english"} <= models
    selected, _ = select_cases(cases, "bert", "default", "token_classification", lower_case=False)
    assert [c.id for c in selected] == ["seed-dslim-bert-base-ner"]
    selected, why = select_cases(cases, "bert", "default", "token_classification", lower_case=True)
    assert not selected and "--disable-lower-case" in why
    selected, _ = select_cases(cases, "yelp-polarity", "probabilities", lower_case=True)
    assert [c.id for c in selected] == ["kserve-yelp-polarity-probabilities-e2e"]
    assert select_cases(cases, "nobody", "default")[0] == []
    for case in cases:  # every shipped case is self-consistent between V1 and V2
        if {"v1", "v2"} <= set(case.expected):
            from conformance.golden import expected_rows

            assert not compare_case(case, "v2", expected_rows(case, "v1")), case.id


def test_expectation_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cases": [{"model": "m", "task": "nope", "inputs": ["x"], "expected": {"v1": [1]}}]}))
    with pytest.raises(ExpectationError, match="task 'nope'"):
        load_expectations(bad)


def test_golden_case_from_a_tiny_model_round_trips(tiny_models, tmp_path):
    from conformance.reference import ReferenceModel

    reference = ReferenceModel(tiny_models("token_classification"), "token_classification")
    texts = ["My name is Wolfgang and I live in Berlin", "Hello, my dog is cute"]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"cases": [golden_case_from_reference(reference, "t1", "tiny/ner", "default", texts)]}))
    (case,) = load_expectations(path)
    assert case.applies_to("ner") and case.applies_to("tiny/ner")
    rows = reference.rows(texts, "default")
    assert compare_case(case, "v1", rows) == []
    wrong = [[(label + 1) % 9 for label in row] for row in rows]
    assert compare_case(case, "v1", wrong)


def test_report_paths_and_markdown(tmp_path):
    assert report_paths(tmp_path / "out.json") == (tmp_path / "out.json", tmp_path / "out.md")
    assert report_paths(tmp_path / "out") == (Path(f"{tmp_path}/out.json"), Path(f"{tmp_path}/out.md"))
    document = {"summary": {"passed": 1, "failed": 1, "known_divergences": 0, "skipped": 0, "total": 2, "duration_s": 1.0},
                "settings": {"endpoint": "http://x"},
                "checks": [{"id": "a", "name": "A", "clause": "c | d", "target": "t", "outcome": "pass", "reason": "",
                            "exchanges": []},
                           {"id": "b", "name": "B", "clause": "c", "target": "t", "outcome": "fail", "reason": "bad",
                            "exchanges": [{"method": "POST", "url": "http://x/v2", "request_body": "{}", "status": 500,
                                           "response_headers": {}, "response_body": "{\"error\": \"x\"}"}]}]}
    text = render_markdown(document)
    assert "1 passed, 1 failed" in text and "c \\| d" in text and "POST http://x/v2" in text


def test_runner_points_pytest_at_the_installed_suite():
    from conformance.__main__ import pytest_args, suite_dir

    assert (suite_dir() / "conftest.py").exists()
    assert pytest_args(["--endpoint", "http://x"])[0] == str(suite_dir())
