"""Offsets (`--return-offsets-mapping`: the endpoint runs with --return_offsets_mapping, token classification).

V1 answers `{"predictions": [...], "outputs": [{"name": "offset_mapping", "datatype": "INT64", "shape": [B, S, 2],
"data": [flat]}]}`, V2 answers a second output `offset_mapping` of the same layout beside `output-0`. Every
token position has a (start, end) character range into its text; special and padding positions are (0, 0).
With a --reference-model the ranges equal its fast tokenizer's offsets, and text[start:end] is the token.
"""

from __future__ import annotations

import pytest

from conformance import semantics
from conformance.checks import clause, json_body, level, needs_task

pytestmark = needs_task
OFFSETS_CLAUSE = ("workbench --return_offsets_mapping (KServe HF runtime): offset_mapping INT64 [B,S,2], S = the "
                  "token positions of the predictions, (start, end) character offsets into each text")


@pytest.fixture
def offsets_target(target, pytestconfig):
    if not pytestconfig.getoption("--return-offsets-mapping"):
        pytest.skip("the endpoint is not said to run with --return_offsets_mapping (--return-offsets-mapping)")
    if target.task != "token_classification":
        pytest.skip("offsets are a token classification output")
    return target


def offset_rows(tensor, batch: int, positions: int) -> list[list[tuple[int, int]]]:
    """Rows of (start, end) pairs from an offset_mapping tensor, checking its layout."""
    semantics.validate_v2_tensor(tensor, "offset_mapping")
    if tensor["datatype"] != "INT64":
        raise semantics.Violation(f"offset_mapping: datatype {tensor['datatype']}, expected INT64")
    if tensor["shape"] != [batch, positions, 2]:
        raise semantics.Violation(f"offset_mapping: shape {tensor['shape']}, expected [B, S, 2] = "
                                  f"{[batch, positions, 2]} (S = token positions of the predictions)")
    nested = semantics.reshape(semantics.flatten(tensor["data"]), tensor["shape"])
    return [[(int(start), int(end)) for start, end in row] for row in nested]


def check_offsets(target, texts: list[str], rows: list[list[tuple[int, int]]]) -> None:
    problems: list[str] = []
    for i, (text, row) in enumerate(zip(texts, rows)):
        for j, (start, end) in enumerate(row):
            if not 0 <= start <= end <= len(text):
                problems.append(f"text {i}, token {j}: ({start}, {end}) is not a range in a {len(text)}-character text")
        spans = [(s, e) for s, e in row if e > s]
        if spans != sorted(spans):
            problems.append(f"text {i}: token ranges are not in text order: {spans[:10]}")
        if not spans:
            problems.append(f"text {i}: no token has a non-empty character range")
    reference = target.reference
    if reference is not None and not problems:
        tokenizer = reference.tokenizer
        encoded = tokenizer(list(texts), padding=True, truncation=True, return_offsets_mapping=True,
                            add_special_tokens=reference.add_special_tokens)
        for i, (text, row) in enumerate(zip(texts, rows)):
            expected = [tuple(pair) for pair in encoded["offset_mapping"][i]]
            if row != expected:
                first = next(j for j, (a, b) in enumerate(zip(row, expected)) if a != b) if len(row) == len(expected) else 0
                problems.append(f"text {i}: offsets differ from the tokenizer's at token {first}: got "
                                f"{row[first:first + 3]}, expected {expected[first:first + 3]}")
                continue
            tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][i])
            for j, ((start, end), token) in enumerate(zip(row, tokens)):
                if end <= start or token in tokenizer.all_special_tokens:
                    continue
                piece = text[start:end].lower() if reference.lower_case else text[start:end]
                if piece != token.removeprefix("##"):
                    problems.append(f"text {i}, token {j}: text[{start}:{end}] = {text[start:end]!r} is not token {token!r}")
                    break
    assert not problems, "offsets wrong:\n" + "\n".join(problems[:10])


@level("kserve")
@clause(f"V1 {OFFSETS_CLAUSE}: beside 'predictions', outputs = [offset_mapping]")
def test_v1_offset_mapping(client, offsets_target):
    """V1 predict answers an offset_mapping tensor beside the predictions, one range per token position."""
    target = offsets_target
    texts = target.texts(3)
    response = client.post(target.v1_predict_path, json_body={"instances": texts})
    assert response.status_code == 200, f"predict answered {response.status_code}: {response.text[:200]}"
    body = json_body(response)
    rows = semantics.v1_rows(target.task, target.mode, body.get("predictions"), len(texts))
    outputs = body.get("outputs")
    assert isinstance(outputs, list) and [t.get("name") for t in outputs if isinstance(t, dict)] == ["offset_mapping"], \
        f"expected outputs: [offset_mapping] beside predictions, got {str(outputs)[:200]}"
    check_offsets(target, texts, offset_rows(outputs[0], len(texts), len(rows[0])))


@level("kserve")
@clause(f"V2 {OFFSETS_CLAUSE}: a second output offset_mapping beside output-0")
def test_v2_offset_mapping(client, offsets_target):
    """V2 infer answers output-0 and offset_mapping, one range per token position of output-0."""
    target = offsets_target
    texts = target.texts(3)
    response = client.post(target.v2_infer_path, json_body=target.v2_body(texts))
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:200]}"
    body = json_body(response)
    rows = semantics.v2_rows(target.task, target.mode, semantics.find_output(body), len(texts))
    names = [t.get("name") for t in semantics.output_list(body) if isinstance(t, dict)]
    assert sorted(names) == ["offset_mapping", "output-0"], f"expected outputs output-0 and offset_mapping, got {names}"
    check_offsets(target, texts, offset_rows(semantics.find_output(body, "offset_mapping"), len(texts), len(rows[0])))
