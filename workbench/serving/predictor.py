"""Texts in, per-text inferences out: tokenize off the event loop, queue for the model, postprocess.

Shared by every protocol (V1, V2, and later the entity routes), so they all batch together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workbench.serving import postprocess
from workbench.serving.args import ServeConfig
from workbench.serving.batching import BatchQueue
from workbench.serving.entities import EntityParams, EntityResult, EntityService
from workbench.serving.errors import BadRequest
from workbench.serving.runner import Encoded, EncoderRunner


INLINE_CHARS = 2000  # requests up to this many characters (and 4 texts) stay on the event loop


@dataclass
class Prediction:
    inferences: list  # one per text, KServe's shape
    encoded: list[Encoded]
    request_length: int  # the request's longest tokenized length (S)


class Predictor:
    def __init__(self, config: ServeConfig, runner: EncoderRunner, queue: BatchQueue):
        self.config = config
        self.runner = runner
        self.queue = queue
        self.entity_service = EntityService(runner, queue)

    @property
    def task(self) -> str:
        return self.runner.task  # type: ignore[return-value]

    def check_count(self, texts: list[str]) -> None:
        if len(texts) > self.config.max_request_texts:
            raise BadRequest(f"request carries {len(texts)} texts; the limit is {self.config.max_request_texts} "
                             f"per request (--max_request_texts)")

    def is_small(self, texts: list[str]) -> bool:
        """Small requests are tokenized and postprocessed on the event loop itself: a hop to a worker
        thread costs more than the work (tens of microseconds), and on a 2-core machine the hops' GIL
        hand-offs slowed every request. Larger ones go to threads, so the loop is never blocked long."""
        return len(texts) <= 4 and sum(map(len, texts)) <= INLINE_CHARS and \
            (self.config.mode.value == "default" or self.task != "fill_mask")

    async def model_outputs(self, texts: list[str]) -> tuple[list, list[Encoded], int]:
        """Raw per-text model outputs (tensors), sliced to the request's own longest length."""
        self.check_count(texts)
        if self.is_small(texts):
            encoded = self.runner.tokenize(texts)
        else:
            encoded = await asyncio.to_thread(self.runner.tokenize, texts)
        request_length = max(len(enc) for enc in encoded)
        outputs = await self.queue.submit(encoded, request_length)
        return outputs, encoded, request_length

    async def predict(self, texts: list[str]) -> Prediction:
        outputs, encoded, request_length = await self.model_outputs(texts)
        args = (self.task, self.config.mode, outputs, self.runner.decode)
        if self.is_small(texts):
            inferences = postprocess.inferences_for(*args)
        else:
            inferences = await asyncio.to_thread(postprocess.inferences_for, *args)
        return Prediction(inferences, encoded, request_length)

    async def entities(self, texts: list[str], params: EntityParams) -> EntityResult:
        """Entities per text (the Hugging Face Inference API's answer), through the same queue."""
        self.check_count(texts)
        return await self.entity_service.predict(texts, params)
