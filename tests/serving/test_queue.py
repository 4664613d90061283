"""The batching queue itself, with a stand-in model (a pure function), so that ordering,
back-pressure and failure handling are tested deterministically, without timing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workbench.serving.batching import BatchQueue
from workbench.serving.errors import BadRequest, Overloaded


class RecordingModel:
    """prepare/forward pair: output = (payload, request_length, batch number); records the batches it saw."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str | None = None):
        self.batches: list[list[str]] = []
        self.gate = gate
        self.fail_on = fail_on

    def prepare(self, items):
        return items

    def forward(self, items):
        if self.gate is not None:
            self.gate.wait(timeout=10)
        payloads = [item.payload for item in items]
        if self.fail_on in payloads:
            raise RuntimeError("model exploded")
        self.batches.append(payloads)
        return [(item.payload, item.request_length, len(self.batches)) for item in items]


def make_queue(model, **limits):
    settings = dict(max_batch_size=4, max_batch_tokens=1024, max_queue_size=64)
    settings.update(limits)
    return BatchQueue(model.prepare, model.forward, **settings)


def test_each_request_gets_its_own_outputs_in_order():
    async def scenario():
        model = RecordingModel()
        queue = make_queue(model)
        queue.start()
        requests = [[f"r{r}t{t}" for t in range(r % 3 + 1)] for r in range(10)]
        answers = await asyncio.gather(*(queue.submit(texts, request_length=5 + r) for r, texts in enumerate(requests)))
        await queue.stop()
        return requests, answers, model

    requests, answers, model = asyncio.run(scenario())
    for r, (texts, answer) in enumerate(zip(requests, answers)):
        assert [payload for payload, _, _ in answer] == texts
        assert all(request_length == 5 + r for _, request_length, _ in answer)
    assert all(len(batch) <= 4 for batch in model.batches)
    assert any(len(batch) > 1 for batch in model.batches), "concurrent texts were never batched together"


def test_a_full_queue_answers_overloaded_at_once():
    async def scenario():
        gate = threading.Event()
        queue = make_queue(RecordingModel(gate), max_queue_size=4)
        queue.start()
        first = asyncio.ensure_future(queue.submit(["a", "b", "c"], request_length=3))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded, match="capacity"):
            await queue.submit(["d", "e"], request_length=3)
        gate.set()
        result = await first
        after = await queue.submit(["d", "e"], request_length=3)  # room again once the model caught up
        await queue.stop()
        return result, after

    result, after = asyncio.run(scenario())
    assert [p for p, _, _ in result] == ["a", "b", "c"] and [p for p, _, _ in after] == ["d", "e"]


def test_a_request_larger_than_the_queue_is_a_bad_request():
    async def scenario():
        queue = make_queue(RecordingModel(), max_queue_size=2)
        queue.start()
        try:
            with pytest.raises(BadRequest, match="at most 2"):
                await queue.submit(["a", "b", "c"], request_length=3)
        finally:
            await queue.stop()

    asyncio.run(scenario())


def test_a_model_failure_fails_only_its_batch_and_the_queue_keeps_serving():
    async def scenario():
        queue = make_queue(RecordingModel(fail_on="boom"), max_batch_size=1)
        queue.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await queue.submit(["boom"], request_length=3)
        ok = await queue.submit(["fine"], request_length=3)
        await queue.stop()
        return ok

    assert asyncio.run(scenario())[0][0] == "fine"


def test_cancelled_requests_are_dropped_before_the_model_runs_them():
    async def scenario():
        gate = threading.Event()
        model = RecordingModel(gate)
        queue = make_queue(model, max_batch_size=1)
        queue.start()
        blocker = asyncio.ensure_future(queue.submit(["first"], request_length=3))
        await asyncio.sleep(0.05)  # "first" is now in the model, held by the gate
        doomed = asyncio.ensure_future(queue.submit(["cancelled"], request_length=3))
        await asyncio.sleep(0.01)
        doomed.cancel()
        gate.set()
        await blocker
        await queue.submit(["last"], request_length=3)
        await queue.stop()
        return model.batches

    batches = asyncio.run(scenario())
    assert ["cancelled"] not in batches and batches[0] == ["first"] and batches[-1] == ["last"]
