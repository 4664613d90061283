"""KServe V1 protocol, a codec over the data plane: `{"instances": [...]}` in as an `InferRequest`, the
data plane's `Answer` out as `{"predictions": [...]}`. Pure functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.serving.dataplane import InferRequest, OutputTensor
from workbench.serving.errors import BadRequest

if TYPE_CHECKING:
    from workbench.serving.inference import Answer


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


def parse_request(body: Any) -> InferRequest:
    """A V1 body as the data plane's request: its texts, and its `parameters` when they are an object
    (entities are asked for there; anything else is ignored, as KServe's runtime ignores V1 parameters).
    V1 has no request id; the answer carries none."""
    texts = parse_texts(body)
    parameters = body.get("parameters")
    return InferRequest(texts=texts, id="", parameters=parameters if isinstance(parameters, dict) else {})


def encode_response(answer: "Answer") -> dict:
    """The data plane's answer as a V1 body. Integer dict keys become strings when it is serialised (see
    wire_json.dump_json), as JSON serialisation of KServe's answer makes them.

    - predictions: one inference per text (KServe's shapes);
    - with offsets (token classification, `--return_offsets_mapping`) KServe's runtime adds an OIP-style
      tensor beside the predictions: `"outputs": [{"name": "offset_mapping", "datatype": "INT64",
      "shape": [B, S, 2], "data": [flat]}]` (huggingfaceserver encoder_model.postprocess);
    - entities (`parameters.aggregation_strategy`): one entity list per text, and per text whether it was
      cut off at the model's maximum length (never silently)."""
    if answer.entities is not None:
        return {"predictions": answer.entities.entities,
                "parameters": {"aggregation_strategy": answer.strategy, "truncated": list(answer.entities.truncated)}}
    from workbench.serving.inference import offsets_tensor

    response: dict[str, Any] = {"predictions": answer.prediction.inferences}
    if answer.offsets:
        response["outputs"] = [v1_tensor(offsets_tensor(answer.prediction))]
    return response


def v1_tensor(tensor: OutputTensor) -> dict:
    """A tensor beside V1 predictions, as KServe's runtime writes it (no `parameters`)."""
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape, "data": tensor.data}
