"""Continuous batching by token budget, on one or several model workers.

Texts from concurrent requests wait in one queue. Whenever a model worker is free, it takes its share of
everything waiting (all of it when it is the only free worker, an even split among the free ones
otherwise), plans batches (pure function `plan_batches`: sorted by length, each within `max_batch_size`
texts and `max_batch_tokens` padded tokens, lengths padded to a multiple of 8) and runs them one after
another on its own thread, which prepares each batch (padding, tensors, pinned memory) and then runs it.

Each worker is one thread (`model_thread()`) with its own intra-op threads; every torch computation of the
server runs on these threads (worker 0 also loads the model). Several single-thread workers running
different batches side by side kept two cores busier than one two-thread worker for ONNX Runtime, whose
forward pass runs without the GIL; torch's forward pass runs Python between its kernels and gained little
(hardware.choose_parallelism, docs/serving.md "Model workers").

Each text carries `request_length`, the longest tokenized length of its request: the model output is sliced back
to it, so a request gets exactly the shape (and padding positions) it would get alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from workbench.serving.errors import BadRequest, Overloaded


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple if multiple > 1 else value


def padded_length(longest: int, multiple: int = 8, cap: int | None = None) -> int:
    """The length a batch is padded to: a multiple of `multiple`, but never past `cap` (the model's
    maximum positions) and never below `longest`."""
    length = round_up(longest, multiple)
    if cap is not None:
        length = min(length, max(cap, longest))
    return length


def plan_batches(spans: Sequence[int], max_batch_tokens: int, max_batch_size: int,
                 multiple: int = 8, cap: int | None = None) -> list[list[int]]:
    """Group text indices into batches, shortest first, each within both budgets.

    A batch costs (number of texts) x (padded length). A single text longer than the token budget
    still gets a batch of its own: the budget limits batching, never refuses a text.
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        candidate = max(longest, spans[index])
        cost = (len(current) + 1) * padded_length(candidate, multiple, cap)
        if current and (len(current) >= max_batch_size or cost > max_batch_tokens):
            batches.append(current)
            current, candidate = [], spans[index]
        current.append(index)
        longest = candidate
    if current:
        batches.append(current)
    return batches


def split_by_length(spans: Sequence[int], overhead_tokens: int, multiple: int = 8,
                    cap: int | None = None) -> list[list[int]]:
    """Split one batch into length groups that minimise the work of padded forward passes.

    Each group is padded to its longest member, so it costs (texts) x (padded length) tokens, plus
    `overhead_tokens` for the pass itself (its fixed cost, in token equivalents). The indices are sorted by
    length and the best contiguous split is found exactly (dynamic programming, quadratic in the batch
    size, which is at most a few hundred). Returns groups of indices into `spans`, shortest group first.
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    if overhead_tokens <= 0 or len(order) < 2:
        return [order] if order else []
    lengths = [padded_length(spans[i], multiple, cap) for i in order]
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cheapest cost of the first j texts
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):  # group = order[start:end], padded to lengths[end - 1] (the longest)
            cost = best[start] + (end - start) * lengths[end - 1] + overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def pack_rows(segments: Sequence[int], row_tokens: int) -> list[tuple[int, int]]:
    """Place segments (token lengths) into rows of at most `row_tokens` tokens, longest first, each into
    the first row with room (first-fit decreasing). A segment longer than `row_tokens` gets a row of
    its own. Returns each segment's (row, start offset), in the order of `segments`."""
    order = sorted(range(len(segments)), key=lambda i: -segments[i])
    used: list[int] = []
    places: list[tuple[int, int]] = [(0, 0)] * len(segments)
    for index in order:
        size = segments[index]
        for row, filled in enumerate(used):
            if filled + size <= row_tokens:
                places[index] = (row, filled)
                used[row] = filled + size
                break
        else:
            places[index] = (len(used), 0)
            used.append(size)
    return places


def balanced_row_tokens(segments: Sequence[int], max_row_tokens: int, multiple: int = 8) -> int:
    """The row capacity for `pack_rows` that fills its rows evenly: the smallest multiple of `multiple`
    (at least the longest segment, at most `max_row_tokens`) at which first-fit decreasing needs no more
    rows than at `max_row_tokens`. Packing at the maximum fills all rows but the last; 15 sentences of 25
    tokens in rows of 256 compute 2 x 256 = 512 positions for 375 tokens, in rows of 192 only 384."""
    longest = max(segments)
    if longest >= max_row_tokens:
        return max_row_tokens
    rows = len({row for row, _ in pack_rows(segments, max_row_tokens)})
    capacity = max(round_up(longest, multiple), round_up(-(-sum(segments) // rows), multiple))
    while capacity < max_row_tokens and len({row for row, _ in pack_rows(segments, capacity)}) > rows:
        capacity += multiple
    return min(capacity, max_row_tokens)


@dataclass
class WorkItem:
    """One text on its way to the model."""

    payload: Any  # what the runner needs (the tokenized text)
    request_length: int  # the request's longest tokenized length
    future: asyncio.Future = field(default=None)  # type: ignore[assignment]


@dataclass
class BatchStats:
    texts: int
    padded_tokens: int  # tokens the model computed (rows x row length), padding included
    seconds: float
    real_tokens: int = 0  # the texts' own tokens


def model_thread() -> concurrent.futures.ThreadPoolExecutor:
    """One model worker's thread: it runs that worker's torch computations (worker 0's also loads the model
    and warms it up). With OpenMP, each thread that runs a parallel region gets a team of worker threads of
    its own; when a loader, a batch preparer and the model runner each had one, forward passes ran slower
    than with one (MiniLM NER, CoNLL sentences one per request, 2 threads, AMD EPYC Zen 4: 13.2 ms per
    forward pass in the server against 10.3 ms with every torch call on one thread; docs/serving.md)."""
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model")


def share_of(pending: int, idle_workers: int) -> int:
    """How many of `pending` texts a worker takes when `idle_workers` workers (itself included) are free:
    an even share, rounded up, so that free workers run side by side instead of one taking everything."""
    return -(-pending // max(1, idle_workers))


class BatchQueue:
    """One queue in front of the model; `submit` returns each text's output in order.

    `executors`: one single-thread executor per model worker (`model_thread()`), shared with whatever loaded
    the model; the queue makes `workers` of its own when none are given, and shuts down only its own."""

    def __init__(
        self,
        prepare: Callable[[list[WorkItem]], Any],
        forward: Callable[[Any], list[Any]],
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        max_delay_s: float = 0.0,
        max_queue_size: int = 2048,
        pad_multiple: int = 8,
        max_positions: int | None = None,
        split_overhead_tokens: int = 0,
        on_batch: Callable[[BatchStats], None] | None = None,
        executors: Sequence[concurrent.futures.Executor] | None = None,
        workers: int = 1,
    ):
        self._prepare = prepare
        self._forward = forward
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_delay_s = max_delay_s
        self.max_queue_size = max_queue_size
        self.pad_multiple = pad_multiple
        self.max_positions = max_positions
        # > 0: split each planned batch into length groups (`split_by_length`), for runners that pad
        # each text to its batch's longest; 0 (packing runners): one forward pass per planned batch.
        self.split_overhead_tokens = split_overhead_tokens
        self._on_batch = on_batch
        self._pending: list[WorkItem] = []
        self._in_flight = 0
        self._wakeup: asyncio.Event | None = None
        self._idle: list[int] = []  # the free model workers, the one freed last on top (its caches are warm)
        self._worker_freed: asyncio.Event | None = None
        self._dispatcher: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._owns_executors = executors is None
        self._executors = list(executors) if executors is not None else [model_thread() for _ in range(workers)]
        if not self._executors:
            raise ValueError("a BatchQueue needs at least one model worker")

    @property
    def workers(self) -> int:
        return len(self._executors)

    @property
    def depth(self) -> int:
        """Texts waiting or in the model right now."""
        return len(self._pending) + self._in_flight

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._worker_freed = asyncio.Event()
        self._idle = list(range(len(self._executors)))[::-1]  # worker 0 first
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="batch-dispatcher")

    async def stop(self) -> None:
        tasks = [task for task in (self._dispatcher, *self._running) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._owns_executors:
            for executor in self._executors:
                executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, payloads: Sequence[Any], request_length: int) -> list[Any]:
        if len(payloads) > self.max_queue_size:  # could never fit: not worth a retry
            raise BadRequest(f"request carries {len(payloads)} texts but the queue holds at most "
                             f"{self.max_queue_size} (--max_queue_size)")
        if self.depth + len(payloads) > self.max_queue_size:
            raise Overloaded(
                f"server is at capacity ({self.depth} texts queued, limit {self.max_queue_size}); retry later"
            )
        loop = asyncio.get_running_loop()
        items = [WorkItem(payload, request_length, loop.create_future()) for payload in payloads]
        self._pending.extend(items)
        assert self._wakeup is not None, "BatchQueue.start() was not called"
        self._wakeup.set()
        return list(await asyncio.gather(*(item.future for item in items)))

    def _take_pending(self, count: int) -> list[WorkItem]:
        """The first `count` live texts waiting (cancelled requests are dropped)."""
        live = [item for item in self._pending if not item.future.done()]
        taken, self._pending = live[:count], live[count:]
        if not self._pending:
            self._wakeup.clear()
        return taken

    def _plan(self, items: list[WorkItem]) -> list[list[WorkItem]]:
        spans = [item.request_length for item in items]
        plans = plan_batches(spans, self.max_batch_tokens, self.max_batch_size, self.pad_multiple, self.max_positions)
        if self.split_overhead_tokens > 0:
            plans = [[plan[i] for i in group] for plan in plans
                     for group in split_by_length([spans[j] for j in plan], self.split_overhead_tokens,
                                                  self.pad_multiple, self.max_positions)]
        return [[items[i] for i in plan] for plan in plans]

    def _stats(self, batch: list[WorkItem], prepared: Any, seconds: float) -> BatchStats:
        """Token counts from the prepared batch when it carries them (`real_tokens`, `computed_tokens`),
        else the padded estimate (texts x longest request length, rounded up)."""
        computed = getattr(prepared, "computed_tokens", None)
        if computed is None:
            longest = max(item.request_length for item in batch)
            computed = len(batch) * padded_length(longest, self.pad_multiple, self.max_positions)
        real = getattr(prepared, "real_tokens", None)
        return BatchStats(len(batch), computed, seconds, real if real is not None else computed)

    def _prepare_and_run(self, batch: list[WorkItem]) -> tuple[Any, list[Any]]:
        """On a model worker's thread: the batch's tensors, then its forward pass."""
        prepared = self._prepare(batch)
        return prepared, self._forward(prepared)

    async def _dispatch(self) -> None:
        """Hand the waiting texts to free workers, as they become free."""
        while True:
            await self._wakeup.wait()
            if self.max_delay_s > 0 and len(self._pending) < self.max_batch_size:
                await asyncio.sleep(self.max_delay_s)
            worker = await self._free_worker()
            items = self._take_pending(share_of(len(self._pending), len(self._idle) + 1))
            if not items:
                self._release(worker)
                continue
            self._in_flight += len(items)
            task = asyncio.get_running_loop().create_task(self._run_on(worker, items), name=f"model-worker-{worker}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_on(self, worker: int, items: list[WorkItem]) -> None:
        """Run `items` as planned batches on one worker, then free it. A failed batch fails its requests
        only; the queue keeps serving."""
        loop = asyncio.get_running_loop()
        try:
            for batch in self._plan(items):
                started = time.perf_counter()
                try:
                    prepared, outputs = await loop.run_in_executor(self._executors[worker], self._prepare_and_run,
                                                                   batch)
                except Exception as exc:  # the model failed: fail this batch's requests, keep serving
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                else:
                    for item, output in zip(batch, outputs):
                        if not item.future.done():
                            item.future.set_result(output)
                    if self._on_batch is not None:
                        self._on_batch(self._stats(batch, prepared, time.perf_counter() - started))
                finally:
                    self._in_flight -= len(batch)
        finally:
            self._release(worker)

    async def _free_worker(self) -> int:
        """The free worker freed last, waiting for one when all are busy."""
        while not self._idle:
            self._worker_freed.clear()
            await self._worker_freed.wait()
        return self._idle.pop()

    def _release(self, worker: int) -> None:
        self._idle.append(worker)
        self._worker_freed.set()
