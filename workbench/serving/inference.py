"""The data plane's operations, shared by every protocol: one typed request in, one typed answer out.

- `answer(state, model_name, InferRequest) -> Answer`: what the model says about each text (per-text
  inferences in KServe's shapes with their tokenization, or entity lists), before any wire format. Every
  protocol asks this one function: REST V1, REST V2 (JSON and binary) and gRPC.
- `infer(state, model_name, InferRequest) -> InferResponse`: the answer as the V2 tensors declared by
  `dataplane.output_specs`, the same object whether the request came over REST or gRPC; each codec only
  encodes it.
- `model_metadata(state, name) -> dict`: inputs and outputs from `dataplane.output_specs`, the one
  declaration the responses are built from too.

V1 answers are per-instance predictions, not tensors (the texts of one V1 request may even answer in
different shapes, e.g. fill mask with a different number of masks): the V1 codec encodes the `Answer`
itself (`protocol_v1.encode_response`), without a detour through a V2 tensor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench import __version__
from workbench.serving import dataplane, entities
from workbench.tasks import LOGIT_TASKS, TOKEN_CLASSIFICATION, Mode

if TYPE_CHECKING:
    from workbench.serving.app import ServerState
    from workbench.serving.entities import EntityResult
    from workbench.serving.predictor import Prediction, Predictor

SERVER_NAME = "workbench"


def server_metadata(extensions: list[str]) -> dict:
    return {"name": SERVER_NAME, "version": __version__, "extensions": extensions}


def served_mode(state: "ServerState") -> Mode:
    """The mode the answers follow: the flag's for logit tasks, default for the others."""
    return state.config.mode if state.runner.task in LOGIT_TASKS else Mode.DEFAULT


def model_metadata(state: "ServerState", name: str) -> dict:
    """V2 model metadata; raises ModelNotFound / NotReady as every model route does."""
    state.check_model(name)
    runner = state.runner
    return {
        "name": name,
        "versions": [],
        "platform": dataplane.PLATFORM,
        "inputs": [dict(dataplane.TEXT_INPUT)],
        "outputs": runner.output_metadata(),
        "parameters": {"task": runner.task, "mode": served_mode(state).value,
                       "labels": {str(k): v for k, v in runner.id2label.items()}},
    }


@dataclass
class Answer:
    """What the model answered one request, before any wire format: either `prediction` (per-text
    inferences and their tokenization) or `entities` (entity lists, with the aggregation strategy)."""

    prediction: "Prediction | None" = None
    entities: "EntityResult | None" = None
    strategy: str | None = None  # the entities' aggregation strategy
    offsets: bool = False  # token spans asked for (--return_offsets_mapping on a token classifier)
    small: bool = True  # small enough to encode on the event loop (Predictor.is_small)


async def answer(state: "ServerState", model_name: str, request: dataplane.InferRequest) -> Answer:
    """Answer one request with the server's predictor and batching queue: entities when the request's
    parameters ask for them, else KServe's per-text inferences."""
    predictor: "Predictor" = state.check_model(model_name)
    if entities.wants_entities(request.parameters):
        params = entities.parse_parameters(request.parameters, strict=False)
        found = await predictor.entities(request.texts, params)
        return Answer(entities=found, strategy=params.aggregation_strategy, small=False)
    prediction = await predictor.predict(request.texts)
    offsets = state.config.return_offsets_mapping and predictor.task == TOKEN_CLASSIFICATION
    return Answer(prediction=prediction, offsets=offsets, small=predictor.is_small(request.texts))


def offsets_tensor(prediction: "Prediction") -> dataplane.OutputTensor:
    return dataplane.offsets_tensor([enc.offsets for enc in prediction.encoded], prediction.request_length)


def response_tensors(state: "ServerState", result: Answer) -> tuple[list[dataplane.OutputTensor], dict | None]:
    """The answer as the declared V2 tensors, and the response parameters (entities: which texts were cut)."""
    if result.entities is not None:
        return ([dataplane.entities_tensor(result.entities.entities, result.strategy)],
                dataplane.truncation_parameters(result.entities.truncated))
    prediction = result.prediction
    specs = dataplane.output_specs(state.runner.task, state.config.mode, offsets=result.offsets)
    tensors = [dataplane.tensor_from_inferences(specs[0], prediction.inferences)]
    if result.offsets:
        tensors.append(offsets_tensor(prediction))
    return tensors, None


async def infer(state: "ServerState", model_name: str, request: dataplane.InferRequest) -> dataplane.InferResponse:
    """Answer one V2 request (REST or gRPC) as the V2 response."""
    result = await answer(state, model_name, request)
    if result.small:
        outputs, parameters = response_tensors(state, result)
    else:
        outputs, parameters = await asyncio.to_thread(response_tensors, state, result)
    outputs = dataplane.select_outputs(outputs, request.requested_outputs)
    return dataplane.InferResponse(state.config.model_name, request.id, outputs, parameters)
