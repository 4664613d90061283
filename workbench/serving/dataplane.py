"""The data plane under every protocol: small typed requests and responses, and the one declaration
of what each task and mode answers.

REST V1, REST V2 (JSON and the binary extension) and gRPC are codecs: each turns its wire form into an
`InferRequest`, and an `InferResponse` back into its wire form. What a model returns is declared once,
in `output_specs` (name, datatype, shape with -1 where it varies); model metadata and every response
tensor are built from that declaration, so metadata and answers cannot disagree.

Tensor data is kept flat (row-major) with its shape, as every wire form wants it: V2 JSON `data`,
binary buffers and gRPC contents all take the flat list as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from workbench.serving.errors import BadRequest
from workbench.tasks import FILL_MASK, SEQUENCE_CLASSIFICATION, TEXT_EMBEDDING, TOKEN_CLASSIFICATION, Mode

TEXT_INPUT = {"name": "text", "datatype": "BYTES", "shape": [-1]}
PLATFORM = "workbench/transformers"


@dataclass(frozen=True)
class OutputSpec:
    """One output a model declares: its name, datatype and shape (-1: varies per request)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


OFFSETS_SPEC = OutputSpec("offset_mapping", "INT64", (-1, -1, 2))
ENTITIES_SPEC = OutputSpec("output-0", "BYTES", (-1,))  # one JSON entity list per text


def output_specs(task: str, mode: Mode, offsets: bool = False, vocab_size: int | None = None,
                 dim: int | None = None) -> list[OutputSpec]:
    """What a model serving `task` in `mode` answers, in answer order (KServe's runtime's shapes).
    text_embedding: one FP32 [B, D] tensor whatever the mode (D: the hidden size, `dim`)."""
    default = mode is Mode.DEFAULT
    if task == TOKEN_CLASSIFICATION:
        specs = [OutputSpec("output-0", "INT64", (-1, 1, -1)) if default else OutputSpec("output-0", "BYTES", (-1, -1))]
        return specs + ([OFFSETS_SPEC] if offsets else [])
    if task == SEQUENCE_CLASSIFICATION:
        return [OutputSpec("output-0", "INT64" if default else "BYTES", (-1,))]
    if task == FILL_MASK:
        if default:
            return [OutputSpec("output-0", "BYTES", (-1,))]
        return [OutputSpec("output-0", "BYTES", (-1, -1, vocab_size if vocab_size else -1))]
    if task == TEXT_EMBEDDING:
        return [OutputSpec("output-0", "FP32", (-1, dim if dim else -1))]
    raise ValueError(f"unknown task {task!r}")


# ---------------------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------------------

@dataclass
class InferRequest:
    """One inference request, whatever protocol it came in on."""

    texts: list[str]
    id: str
    parameters: dict[str, Any] = field(default_factory=dict)
    requested_outputs: list[str] | None = None  # None: every output
    binary_outputs: set[str] = field(default_factory=set)  # REST V2 binary extension ("*": all)
    raw: bool = False  # gRPC: the inputs came as raw_input_contents, so the outputs go back raw


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    data: list  # flat, row-major
    parameters: dict[str, Any] | None = None

    def as_dict(self) -> dict:
        """Field order and null parameters as KServe's pydantic InferOutputTensor serialises them."""
        return {"name": self.name, "shape": self.shape, "datatype": self.datatype,
                "parameters": self.parameters, "data": self.data}


@dataclass
class InferResponse:
    model_name: str
    id: str
    outputs: list[OutputTensor]
    parameters: dict[str, Any] | None = None

    def as_dict(self) -> dict:
        """Field order and null fields as KServe's pydantic InferenceResponse serialises them."""
        return {"model_name": self.model_name, "model_version": None, "id": self.id,
                "parameters": self.parameters, "outputs": [o.as_dict() for o in self.outputs]}


# ---------------------------------------------------------------------------------------------------
# Tensors from model results (pure)
# ---------------------------------------------------------------------------------------------------

IRREGULAR = ("the texts of this request give outputs of different shapes (e.g. a different number of mask "
             "tokens per text), which one V2 tensor cannot hold; send them in separate requests")


def _flatten_to_rank(values: list, rank: int) -> tuple[list[int], list]:
    """(shape, flat elements) of `values` nested `rank` deep; BadRequest when ragged."""
    shape = [len(values)]
    level = values
    for _ in range(1, rank):
        sizes = {len(item) if isinstance(item, list) else -1 for item in level}
        if len(sizes) > 1 or -1 in sizes:
            raise BadRequest(IRREGULAR)
        shape.append(sizes.pop() if sizes else 0)
        level = [element for item in level for element in item]
    if any(isinstance(item, list) for item in level):
        raise BadRequest(IRREGULAR)
    return shape, level


def tensor_from_inferences(spec: OutputSpec, inferences: list) -> OutputTensor:
    """The per-text inferences (KServe's shapes, see postprocess) as the declared tensor. BYTES elements
    that are not strings (the dicts of probabilities and logits) travel as their Python `str`, as
    KServe's runtime sends them."""
    shape, flat = _flatten_to_rank(inferences, len(spec.shape))
    if spec.datatype == "BYTES":
        flat = [item if isinstance(item, str) else str(item) for item in flat]
    return OutputTensor(spec.name, spec.datatype, shape, flat)


def offsets_tensor(spans: Sequence[Sequence[tuple[int, int]] | None], request_length: int) -> OutputTensor:
    """[B, S, 2] character spans straight from the tokenizer's offsets, (0, 0) at padding positions."""
    flat: list[int] = []
    for row in spans:
        row = row or []
        for start, end in row:
            flat.append(start)
            flat.append(end)
        flat.extend([0, 0] * (request_length - len(row)))
    return OutputTensor(OFFSETS_SPEC.name, OFFSETS_SPEC.datatype, [len(spans), request_length, 2], flat)


def entities_tensor(entities: list[list[dict]], strategy: str) -> OutputTensor:
    """Entities: BYTES of shape [B], each element that text's entity list as JSON."""
    return OutputTensor(ENTITIES_SPEC.name, ENTITIES_SPEC.datatype, [len(entities)],
                        [json.dumps(row, ensure_ascii=False) for row in entities],
                        {"content_type": "application/json", "aggregation_strategy": strategy})


def truncation_parameters(truncated: list[bool]) -> dict:
    """Response parameters saying which texts were cut off (V2 parameter values are scalars, so the
    indices travel as a JSON string)."""
    return {"truncated": any(truncated), "truncated_indices": json.dumps([i for i, t in enumerate(truncated) if t])}


def select_outputs(outputs: list[OutputTensor], requested: list[str] | None) -> list[OutputTensor]:
    if requested is None:
        return outputs
    by_name = {o.name: o for o in outputs}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}; this model returns {list(by_name)}")
    return [by_name[name] for name in requested]
