"""The batching queue itself, with a stand-in model (a pure function), so that ordering,
back-pressure and failure handling are tested deterministically, without timing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from workbench.serving.batching import BatchQueue, share_of
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


class BlockingModel:
    """forward waits until released; records which thread ran each batch and how many ran at once."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.threads: list[int] = []

    def prepare(self, items):
        return items

    def forward(self, items):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.append(threading.get_ident())
        self.release.wait(timeout=10)
        with self.lock:
            self.running -= 1
        return [item.payload for item in items]


def test_share_of_splits_the_waiting_texts_evenly_among_free_workers():
    assert [share_of(10, 2), share_of(9, 2), share_of(1, 2), share_of(5, 1), share_of(0, 3)] == [5, 5, 1, 5, 0]


def test_two_workers_run_two_batches_side_by_side_on_two_threads():
    async def scenario():
        model = BlockingModel()
        queue = make_queue(model, workers=2)
        queue.start()
        first = asyncio.ensure_future(queue.submit(["a", "b"], request_length=3))
        for _ in range(200):  # the first worker takes both texts and blocks in forward
            if model.running == 1:
                break
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(queue.submit(["c"], request_length=3))
        for _ in range(200):  # the second worker takes "c" while the first is still busy
            if model.running == 2:
                break
            await asyncio.sleep(0.01)
        model.release.set()
        answers = await asyncio.gather(first, second)
        await queue.stop()
        return model, answers

    model, answers = asyncio.run(scenario())
    assert answers == [["a", "b"], ["c"]]
    assert model.most_at_once == 2, "the second worker never ran while the first was busy"
    assert len(set(model.threads)) == 2


def test_one_request_at_a_time_stays_on_the_worker_freed_last():
    async def scenario():
        model = BlockingModel()
        model.release.set()
        queue = make_queue(model, workers=3)
        queue.start()
        for text in "abcdef":
            assert await queue.submit([text], request_length=3) == [text]
        await queue.stop()
        return model

    model = asyncio.run(scenario())
    assert len(set(model.threads)) == 1, "sequential requests hopped between workers (cold caches)"


def test_a_failing_batch_on_one_worker_leaves_the_others_serving():
    async def scenario():
        queue = make_queue(RecordingModel(fail_on="boom"), workers=2, max_batch_size=1)
        queue.start()
        results = await asyncio.gather(queue.submit(["boom"], request_length=3), queue.submit(["ok1"], request_length=3),
                                        queue.submit(["ok2"], request_length=3), return_exceptions=True)
        after = await queue.submit(["after"], request_length=3)
        await queue.stop()
        return results, after

    results, after = asyncio.run(scenario())
    assert isinstance(results[0], RuntimeError)
    assert [r[0][0] for r in results[1:]] == ["ok1", "ok2"] and after[0][0] == "after"
