"""Texts, request bodies and token counts."""

from __future__ import annotations

import json

import pytest

from workbench.bench.load import answer_error
from workbench.bench.workload import (SAMPLE_TEXTS, build_payloads, count_words, group_texts, load_texts,
                                      request_body, request_path)


def test_built_in_sample_is_used_without_a_file():
    texts = load_texts(None)
    assert texts == list(SAMPLE_TEXTS) and len(texts) >= 20


def test_texts_file_one_per_line_blank_lines_skipped(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("First text .\n\n  Second text  \n", encoding="utf-8")
    assert load_texts(path) == ["First text .", "Second text"]


def test_missing_or_empty_texts_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="texts file not found"):
        load_texts(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="no non-blank lines"):
        load_texts(tmp_path / "empty.txt")


def test_count_words_counts_words_and_punctuation():
    assert count_words("Anna Schmidt , a spokeswoman , declined .") == 8
    assert count_words("3-1") == 3


def test_group_texts_wraps_around():
    assert group_texts(["a", "b", "c"], 2) == [["a", "b"], ["b", "c"], ["c", "a"]]
    with pytest.raises(ValueError):
        group_texts(["a"], 0)


def test_request_bodies_and_paths():
    assert request_body("v1", ["x", "y"]) == {"instances": ["x", "y"]}
    v2 = request_body("v2", ["x", "y"])
    assert v2["inputs"][0] == {"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}
    assert request_path("v1", "ner") == "/v1/models/ner:predict"
    assert request_path("v2", "ner") == "/v2/models/ner/infer"
    assert request_path("openai", "minilm") == "/openai/v1/embeddings"
    assert request_body("openai", ["x"], "minilm") == {"model": "minilm", "input": ["x"], "encoding_format": "float"}
    with pytest.raises(ValueError, match="unknown protocol"):
        request_body("v3", ["x"])


def test_payloads_carry_text_and_token_counts():
    payloads = build_payloads(["one two .", "three"], "v1", batch=2)
    assert [(p.texts, p.tokens) for p in payloads] == [(2, 4), (2, 4)]
    assert json.loads(payloads[0].body) == {"instances": ["one two .", "three"]}


def test_token_counter_can_be_a_real_tokenizer(tiny_models):
    from workbench.bench.workload import tokenizer_counter

    count = tokenizer_counter(tiny_models("token_classification"))
    assert count("hello paris") == 4  # [CLS] hello paris [SEP]


@pytest.mark.parametrize("protocol, status, body, expected", [
    ("v1", 200, b'{"predictions": [1]}', None),
    ("v2", 200, b'{"outputs": [{"name": "o"}]}', None),
    ("v1", 200, b'{"outputs": [{"name": "o"}]}', "invalid response"),
    ("v2", 200, b'{"outputs": []}', "invalid response"),
    ("v1", 200, b"not json", "invalid response"),
    ("v1", 503, b'{"error": "full"}', "HTTP 503"),
    ("openai", 200, b'{"object": "list", "data": [{"embedding": [0.1]}]}', None),
    ("openai", 200, b'{"predictions": [[0.1]]}', "invalid response"),
])
def test_answer_check(protocol, status, body, expected):
    assert answer_error(protocol, status, body) == expected


def test_a_conll_file_gives_one_text_per_sentence(tmp_path):
    from workbench.bench.workload import load_texts

    conll = tmp_path / "valid.txt"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
                     "Blackburn NNP I-NP I-PER\n")
    assert load_texts(conll) == ["EU rejects", "Peter Blackburn"]
    plain = tmp_path / "texts.txt"
    plain.write_text("Hello world\n\nSecond line here\n")
    assert load_texts(plain) == ["Hello world", "Second line here"]
