"""Request parsing and response building for V1 and V2 (pure functions)."""

import struct

import pytest

from workbench.serving import dataplane, protocol_v1, protocol_v2
from workbench.serving.errors import BadRequest
from workbench.tasks import Mode, infer_task


def test_v1_reads_instances_or_inputs_and_a_bare_string():
    assert protocol_v1.parse_texts({"instances": ["a", "b"]}) == ["a", "b"]
    assert protocol_v1.parse_texts({"inputs": ["a"]}) == ["a"]
    assert protocol_v1.parse_texts({"instances": "one text"}) == ["one text"]


@pytest.mark.parametrize("body, words", [
    ({}, "needs 'instances'"),
    ([], "JSON object"),
    ({"instances": []}, "empty"),
    ({"instances": [1, 2]}, "must be a string"),
    ({"instances": {"a": 1}}, "list of strings"),
])
def test_v1_bad_bodies_say_what_is_wrong(body, words):
    with pytest.raises(BadRequest, match=words):
        protocol_v1.parse_texts(body)


def test_v1_request_keeps_object_parameters_and_ignores_others():
    asked = protocol_v1.parse_request({"instances": ["a"], "parameters": {"aggregation_strategy": "simple"}})
    assert asked.texts == ["a"] and asked.parameters == {"aggregation_strategy": "simple"}
    assert protocol_v1.parse_request({"instances": ["a"], "parameters": ["x"]}).parameters == {}
    assert protocol_v1.parse_request({"instances": "a"}).parameters == {}


def _prediction(inferences, offsets, request_length):
    from workbench.serving.predictor import Prediction
    from workbench.serving.runner import Encoded

    return Prediction(inferences, [Encoded([101, 7, 102], None, spans) for spans in offsets], request_length)


def test_v1_answer_is_the_predictions_and_offsets_beside_them_as_kserve_writes_them():
    from workbench.serving.inference import Answer

    prediction = _prediction([[[0, 3, 0, 0]], [[0, 5, 0, 0]]], [[(0, 0), (0, 2), (0, 0)], [(0, 0), (0, 5), (0, 0)]], 4)
    plain = protocol_v1.encode_response(Answer(prediction=prediction))
    assert plain == {"predictions": [[[0, 3, 0, 0]], [[0, 5, 0, 0]]]}
    with_offsets = protocol_v1.encode_response(Answer(prediction=prediction, offsets=True))
    assert with_offsets["outputs"] == [{"name": "offset_mapping", "datatype": "INT64", "shape": [2, 4, 2],
                                        "data": [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]}]


def test_v1_entity_answer_says_the_strategy_and_which_texts_were_cut():
    from workbench.serving.entities import EntityResult
    from workbench.serving.inference import Answer

    found = EntityResult(entities=[[{"entity_group": "PER", "word": "lisa"}], []], truncated=[False, True])
    assert protocol_v1.encode_response(Answer(entities=found, strategy="simple")) == {
        "predictions": [[{"entity_group": "PER", "word": "lisa"}], []],
        "parameters": {"aggregation_strategy": "simple", "truncated": [False, True]}}


def tensor(data, shape=None, datatype="BYTES", **extra):
    return {"inputs": [{"name": "text", "shape": [len(data)] if shape is None else shape,
                        "datatype": datatype, "data": data, **extra}]}


def test_v2_reads_texts_and_keeps_the_id():
    request = protocol_v2.parse_request({**tensor(["a", "b"]), "id": "42"})
    assert request.texts == ["a", "b"] and request.id == "42"


def test_v2_accepts_a_single_text_with_empty_shape_and_nested_data():
    assert protocol_v2.parse_request(tensor(["a"], shape=[])).texts == ["a"]
    assert protocol_v2.parse_request(tensor([["a"], ["b"]], shape=[2, 1])).texts == ["a", "b"]


def test_v2_generates_an_id_when_none_is_sent():
    assert len(protocol_v2.parse_request(tensor(["a"])).id) == 36


@pytest.mark.parametrize("body, words", [
    ({}, "needs 'inputs'"),
    ({"inputs": []}, "non-empty"),
    (tensor(["a"], datatype="FP32"), "datatype 'BYTES'"),
    (tensor(["a"], shape=[3]), r"3 elements\) but carries 1"),
    (tensor([1.0]), "expected a string"),
    (tensor([], shape=[0]), "empty"),
    ({"inputs": [{"name": "t", "datatype": "BYTES", "data": ["a"]}]}, "missing 'shape'"),
    ({**tensor(["a"]), "id": 5}, "'id' must be a string"),
])
def test_v2_bad_requests_say_what_is_wrong(body, words):
    with pytest.raises(BadRequest, match=words):
        protocol_v2.parse_request(body)


def test_v2_binary_bytes_input():
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"hello", b"world!"))
    body = {"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}]}
    assert protocol_v2.parse_request(body, raw).texts == ["hello", "world!"]
    truncated = {"inputs": [{**body["inputs"][0], "parameters": {"binary_data_size": len(raw) - 1}}]}
    with pytest.raises(BadRequest, match="runs past the end"):
        protocol_v2.parse_request(truncated, raw[:-1])
    with pytest.raises(BadRequest, match="does not fit"):
        protocol_v2.parse_request(body, raw[:-1])
    header, binary = protocol_v2.split_binary_body(b'{"x":1}' + raw, "7")
    assert header == b'{"x":1}' and binary == raw


def test_v2_tensors_take_the_declared_datatype_and_shape_and_python_str_for_dicts():
    token_default = dataplane.output_specs("token_classification", Mode.DEFAULT)[0]
    assert dataplane.tensor_from_inferences(token_default, [[[0, 3, 0]], [[1, 0, 0]]]).as_dict() == {
        "name": "output-0", "shape": [2, 1, 3], "datatype": "INT64", "parameters": None, "data": [0, 3, 0, 1, 0, 0]}
    probabilities = dataplane.output_specs("sequence_classification", Mode.PROBABILITIES)[0]
    out = dataplane.tensor_from_inferences(probabilities, [{0: 0.0012, 1: 0.9988}])
    assert out.shape == [1] and out.datatype == "BYTES" and out.data == ["{0: 0.0012, 1: 0.9988}"]
    fill_default = dataplane.output_specs("fill_mask", Mode.DEFAULT)[0]
    assert dataplane.tensor_from_inferences(fill_default, ["paris", "france"]).shape == [2]


def test_v2_ragged_outputs_are_a_clear_error():
    spec = dataplane.output_specs("token_classification", Mode.PROBABILITIES)[0]
    with pytest.raises(BadRequest, match="different shapes"):
        dataplane.tensor_from_inferences(spec, [[{0: "0.1"}], [{0: "0.1"}, {0: "0.2"}]])


def test_v2_binary_output_encoding():
    response = dataplane.InferResponse("m", "1", [dataplane.OutputTensor("output-0", "BYTES", [1], ["ab"])])
    body, json_length = protocol_v2.encode_response(response, {"*"})
    assert body[json_length:] == struct.pack("<I", 2) + b"ab"
    assert b'"binary_data_size":6' in body[:json_length] and b'"data"' not in body[:json_length]
    assert response.outputs[0].data == ["ab"]  # the typed response is not consumed by encoding it


def test_v2_json_encoding_keeps_kserves_field_order_and_nulls():
    response = dataplane.InferResponse("m", "1", [dataplane.OutputTensor("output-0", "INT64", [2], [1, 0])])
    body, header_length = protocol_v2.encode_response(response, set())
    assert header_length is None
    assert body == (b'{"model_name":"m","model_version":null,"id":"1","parameters":null,"outputs":'
                    b'[{"name":"output-0","shape":[2],"datatype":"INT64","parameters":null,"data":[1,0]}]}')


def test_task_is_inferred_from_the_architecture_suffix():
    assert infer_task(["BertForTokenClassification"]) == "token_classification"
    assert infer_task(["DistilBertForSequenceClassification"]) == "sequence_classification"
    assert infer_task(["BertForMaskedLM"]) == "fill_mask"
    # No task head: a base model is served as text embeddings (KServe's runtime needs --task for it).
    assert infer_task(["BertModel"]) == "text_embedding"
    assert infer_task(["MPNetModel"]) == "text_embedding"
    for refused in (["BertForQuestionAnswering"], ["EncoderDecoderModel"], ["MarianMTModel"], ["BertLMHead"]):
        with pytest.raises(ValueError, match="pass --task"):
            infer_task(refused)
