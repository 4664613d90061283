"""The data plane's operations, shared by every protocol: one request in, one typed answer out.

- `infer(state, model_name, InferRequest) -> InferResponse`: the V2 answer, the same object whether the
  request came over REST (JSON or binary) or gRPC; each codec only encodes it.
- `model_metadata(state, name) -> dict`: inputs and outputs from `dataplane.output_specs`, the one
  declaration the responses are built from too.

V1 answers are per-instance predictions, not tensors: the V1 route renders the predictor's `Prediction`
(the same typed per-text inferences these tensors are built from) without a detour through a tensor.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from workbench import __version__
from workbench.serving import dataplane, entities
from workbench.tasks import LOGIT_TASKS, TOKEN_CLASSIFICATION, Mode

if TYPE_CHECKING:
    from workbench.serving.app import ServerState

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


async def infer(state: "ServerState", model_name: str, request: dataplane.InferRequest) -> dataplane.InferResponse:
    """Answer one V2 request with the server's predictor and batching queue."""
    predictor = state.check_model(model_name)
    config = state.config
    parameters = None
    if entities.wants_entities(request.parameters):
        params = entities.parse_parameters(request.parameters, strict=False)
        found = await predictor.entities(request.texts, params)
        outputs = [dataplane.entities_tensor(found.entities, params.aggregation_strategy)]
        parameters = dataplane.truncation_parameters(found.truncated)
    else:
        prediction = await predictor.predict(request.texts)
        offsets = config.return_offsets_mapping and predictor.task == TOKEN_CLASSIFICATION
        specs = dataplane.output_specs(predictor.task, config.mode, offsets=offsets)

        def build() -> list[dataplane.OutputTensor]:
            tensors = [dataplane.tensor_from_inferences(specs[0], prediction.inferences)]
            if offsets:
                tensors.append(dataplane.offsets_tensor([enc.offsets for enc in prediction.encoded],
                                                        prediction.request_length))
            return tensors

        outputs = build() if predictor.is_small(request.texts) else await asyncio.to_thread(build)
    outputs = dataplane.select_outputs(outputs, request.requested_outputs)
    return dataplane.InferResponse(config.model_name, request.id, outputs, parameters)
