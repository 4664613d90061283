"""Entities, not ids: token classification answered the way the Hugging Face Inference API answers.

- `parse_parameters` / `parse_hf_request`: validate `aggregation_strategy`, `ignore_labels`, `stride`
  and the `inputs` of `POST /models/{name}` (pure functions; every mistake is a 400 with a clear message).
- `check_for_model`: what the loaded model allows (fast tokenizer for first/average/max and stride,
  stride below the window length).
- `EntityService`: tokenizes texts into windows (overlapping when `stride` is given, as the
  token-classification pipeline splits long texts), runs every window through the server's one batching
  queue, then turns the logits into entities with transformers' own `TokenClassificationPipeline.postprocess`
  (gather_pre_entities -> aggregate -> ignore_labels -> aggregate_overlapping_entities). The pipeline
  object is built once around the already loaded model and tokenizer; it never runs the model itself.

One deliberate difference from the pipeline: `word` is always `text[start:end]`, the original text's
slice (the pipeline decodes tokens, so an uncased model gives "new york" for "New York" and "jean - baptiste"
for "Jean-Baptiste"). Scores are plain floats; everything else is the pipeline's answer.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from workbench.serving.errors import BadRequest

STRATEGIES = ("none", "simple", "first", "average", "max")
WORD_STRATEGIES = ("first", "average", "max")  # need word boundaries: a fast tokenizer's offsets
DEFAULT_STRATEGY = "simple"  # the Hugging Face Inference API's default for token classification
PARAMETER_NAMES = ("aggregation_strategy", "ignore_labels", "stride")


@dataclass(frozen=True)
class EntityParams:
    aggregation_strategy: str = DEFAULT_STRATEGY
    ignore_labels: tuple[str, ...] | None = None  # None: the pipeline's default, ["O"]
    stride: int | None = None


@dataclass
class EntityResult:
    entities: list[list[dict]]  # per text
    truncated: list[bool]  # per text: cut off at max_length (only without stride)


# --- parsing (pure) ----------------------------------------------------------------------------

def wants_entities(parameters: Any) -> bool:
    """True when a KServe V1/V2 request's parameters ask for entities."""
    return isinstance(parameters, dict) and parameters.get("aggregation_strategy") is not None


def parse_parameters(parameters: Any, *, strict: bool = True, where: str = "parameters") -> EntityParams:
    """EntityParams from a request's `parameters` object. `strict`: unknown keys are an error (the
    Hugging Face route); KServe routes pass `strict=False`, their parameters carry other keys too.
    A key whose value is null counts as absent."""
    if parameters is None:
        return EntityParams()
    if not isinstance(parameters, dict):
        raise BadRequest(f"'{where}' must be an object, got {type(parameters).__name__}")
    if strict:
        unknown = sorted(set(parameters) - set(PARAMETER_NAMES))
        if unknown:
            raise BadRequest(f"unknown {where} {unknown}; token classification takes {list(PARAMETER_NAMES)}")

    strategy = parameters.get("aggregation_strategy")
    if strategy is None:
        strategy = DEFAULT_STRATEGY
    if not isinstance(strategy, str):
        raise BadRequest(f"'{where}.aggregation_strategy' must be a string, one of {list(STRATEGIES)}")
    if strategy.lower() not in STRATEGIES:
        raise BadRequest(f"unknown aggregation_strategy {strategy!r}; use one of {list(STRATEGIES)}")
    strategy = strategy.lower()

    ignore = parameters.get("ignore_labels")
    if ignore is not None:
        if not isinstance(ignore, list) or not all(isinstance(label, str) for label in ignore):
            raise BadRequest(f"'{where}.ignore_labels' must be a list of label names (strings), got {ignore!r:.100}")
        ignore = tuple(ignore)

    stride = parameters.get("stride")
    if stride is not None:
        if isinstance(stride, bool) or not isinstance(stride, int):
            raise BadRequest(f"'{where}.stride' must be an integer, got {stride!r:.100}")
        if stride < 0:
            raise BadRequest(f"'{where}.stride' must be 0 or more, got {stride}")
        if strategy == "none":
            raise BadRequest("stride splits long texts into windows and merges their entities, which needs "
                             "aggregation: use aggregation_strategy simple, first, average or max")
    return EntityParams(strategy, ignore, stride)


def parse_hf_request(body: Any) -> tuple[list[str], bool, EntityParams]:
    """(texts, whether `inputs` was a single string, parameters) of a Hugging Face Inference API request.
    A top-level `options` object (the API's wait_for_model/use_cache) is accepted and ignored."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object {{\"inputs\": ..., \"parameters\": {{...}}}}, "
                         f"got {type(body).__name__}")
    unknown = sorted(set(body) - {"inputs", "parameters", "options"})
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; send {{\"inputs\": text or [texts], \"parameters\": {{...}}}}")
    if "inputs" not in body:
        raise BadRequest("the request needs 'inputs': a text or a list of texts")
    inputs = body["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else inputs
    if not isinstance(texts, list):
        raise BadRequest(f"'inputs' must be a string or a list of strings, got {type(inputs).__name__}")
    if not texts:
        raise BadRequest("'inputs' is an empty list: send at least one text")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(f"'inputs[{index}]' must be a string, got {type(text).__name__}")
    return texts, single, parse_parameters(body.get("parameters"))


def check_for_model(params: EntityParams, *, task: str | None, is_fast: bool, max_length: int,
                    special_tokens: int) -> None:
    """What this model allows. `special_tokens`: tokens the tokenizer adds to every window."""
    if task != "token_classification":
        raise BadRequest(f"entities (aggregation_strategy, POST /models/{{name}}) are served for token "
                         f"classification models only; this model serves {task}")
    if params.aggregation_strategy in WORD_STRATEGIES and not is_fast:
        raise BadRequest(f"aggregation_strategy {params.aggregation_strategy!r} needs a fast tokenizer to find "
                         f"word boundaries; this model's tokenizer is not fast: use 'simple'")
    if params.stride is not None:
        if not is_fast:
            raise BadRequest("stride needs a fast tokenizer (overflowing windows); this model's tokenizer is not fast")
        room = max_length - special_tokens
        if params.stride >= room:
            raise BadRequest(f"stride {params.stride} must be less than the window's {room} text tokens "
                             f"(max_length {max_length} minus {special_tokens} special tokens)")


# --- outputs ------------------------------------------------------------------------------------

def clean_entity(entity: dict, text: str) -> dict:
    """The pipeline's entity as JSON-ready values; `word` is the original text's slice."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key == "score":
            value = float(value)
        elif key in ("index", "start", "end") and value is not None:
            value = int(value)
        out[key] = value
    if out.get("start") is not None and out.get("end") is not None:
        out["word"] = text[out["start"]:out["end"]]
    return out


class EntityService:
    """Entities for a loaded token-classification runner, through the server's batching queue."""

    def __init__(self, runner, queue):
        self.runner = runner
        self.queue = queue
        self._pipeline = None
        self._lock = threading.Lock()

    @property
    def pipeline(self):
        """transformers' TokenClassificationPipeline around the loaded model (built once; used only for
        its postprocessing)."""
        with self._lock:
            if self._pipeline is None:
                from transformers import TokenClassificationPipeline

                model = self.runner.model
                self._pipeline = TokenClassificationPipeline(model=model, tokenizer=self.runner.tokenizer,
                                                             device=model.device)
            return self._pipeline

    def special_tokens(self) -> int:
        if not self.runner.config.add_special_tokens:
            return 0
        return self.runner.tokenizer.num_special_tokens_to_add(pair=False)

    def check(self, params: EntityParams) -> None:
        check_for_model(params, task=self.runner.task, is_fast=self.runner.tokenizer.is_fast,
                        max_length=self.runner.max_length, special_tokens=self.special_tokens())

    def postprocess(self, texts: list[str], windows: list, owners: list[int], outputs: list,
                    params: EntityParams) -> list[list[dict]]:
        """Per text, the pipeline's postprocess over that text's windows' logits."""
        import torch

        pipeline = self.pipeline
        per_text: list[list[dict]] = [[] for _ in texts]
        for window, owner, logits in zip(windows, owners, outputs):
            length = len(window)
            per_text[owner].append({
                "logits": logits[:length].float().unsqueeze(0),
                # Plain lists where the pipeline only indexes them: ~2x faster than tensors.
                "input_ids": [window.input_ids],
                "offset_mapping": [window.offsets] if window.offsets is not None else None,
                "special_tokens_mask": torch.tensor([window.special_tokens_mask]),
                "sentence": texts[owner] if not per_text[owner] else None,
                "is_last": False,
            })
        from transformers.pipelines.token_classification import AggregationStrategy

        strategy = AggregationStrategy(params.aggregation_strategy)
        ignore = list(params.ignore_labels) if params.ignore_labels is not None else None
        results = []
        for text, chunks in zip(texts, per_text):
            entities = pipeline.postprocess(chunks, aggregation_strategy=strategy, ignore_labels=ignore)
            results.append([clean_entity(entity, text) for entity in entities])
        return results

    async def predict(self, texts: list[str], params: EntityParams) -> EntityResult:
        self.check(params)
        windows, owners, truncated = await asyncio.to_thread(self.runner.tokenize_windows, texts, params.stride)
        request_length = max(len(window) for window in windows)
        outputs = await self.queue.submit(windows, request_length)
        entities = await asyncio.to_thread(self.postprocess, texts, windows, owners, outputs, params)
        return EntityResult(entities, truncated)
