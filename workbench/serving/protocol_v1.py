"""KServe V1 protocol: `{"instances": [...]}` in, `{"predictions": [...]}` out. Pure functions."""

from __future__ import annotations

from typing import Any

from workbench.serving.errors import BadRequest


def parse_texts(body: Any) -> list[str]:
    """The texts of a V1 request. A bare string is a batch of one, as in KServe."""
    if not isinstance(body, dict):
        raise BadRequest(f"a V1 request body must be a JSON object with 'instances', got {type(body).__name__}")
    if "instances" in body:
        instances = body["instances"]
        key = "instances"
    elif "inputs" in body:
        instances = body["inputs"]
        key = "inputs"
    else:
        raise BadRequest("a V1 request needs 'instances' (or 'inputs'): {\"instances\": [\"text\", ...]}")
    if isinstance(instances, str):
        instances = [instances]
    if not isinstance(instances, list):
        raise BadRequest(f"'{key}' must be a list of strings, got {type(instances).__name__}")
    if not instances:
        raise BadRequest(f"'{key}' is empty: send at least one text")
    for index, text in enumerate(instances):
        if not isinstance(text, str):
            raise BadRequest(f"'{key}[{index}]' must be a string, got {type(text).__name__}: {str(text)[:80]}")
    return instances


def build_response(inferences: list, offset_mapping: list | None = None) -> dict:
    """The V1 answer. Integer dict keys become strings when it is serialised (see wire_json.dump_json),
    as JSON serialisation of KServe's answer makes them.

    With offsets (token classification, `--return_offsets_mapping`) KServe's runtime adds an OIP-style
    tensor beside the predictions: `"outputs": [{"name": "offset_mapping", "datatype": "INT64",
    "shape": [B, S, 2], "data": [flat]}]` (huggingfaceserver encoder_model.postprocess)."""
    response: dict[str, Any] = {"predictions": inferences}
    if offset_mapping is not None:
        response["outputs"] = [offsets_output(offset_mapping)]
    return response


def offsets_output(offset_mapping: list) -> dict:
    """[B, S, 2] character spans as one flat INT64 tensor."""
    width = len(offset_mapping[0]) if offset_mapping else 0
    return {"name": "offset_mapping", "datatype": "INT64", "shape": [len(offset_mapping), width, 2],
            "data": [value for row in offset_mapping for pair in row for value in pair]}


def build_entity_response(entities: list[list[dict]], strategy: str, truncated: list[bool]) -> dict:
    """The V1 answer to a request with `parameters.aggregation_strategy`: one entity list per text, and
    per text whether it was cut off at the model's maximum length (never silently)."""
    return {"predictions": entities,
            "parameters": {"aggregation_strategy": strategy, "truncated": list(truncated)}}
