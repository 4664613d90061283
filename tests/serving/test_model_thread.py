"""Every torch computation of a server runs on its model workers' threads (batching.model_thread): loading
(the first worker's), warm-up, batch preparation and forward passes; with one worker, on one thread. With OpenMP each thread that runs a parallel region keeps a
team of worker threads of its own, and forward passes ran slower once a loader and a batch preparer had their
own teams (docs/serving.md, "One thread for torch"). Checked on the real app and runner with a tiny model."""

from __future__ import annotations

import asyncio
import threading


def _recording(runner, name: str, seen: dict[str, set[int]]):
    method = getattr(runner, name)

    def record(*args, **kwargs):
        seen.setdefault(name, set()).add(threading.get_ident())
        return method(*args, **kwargs)

    setattr(runner, name, record)


def _recorded_app(state):
    """The real app over `state`, its runner's torch entry points recording the threads they ran on."""
    from workbench.serving.app import build_app

    seen: dict[str, set[int]] = {}
    for name in ("load", "warm_up", "prepare", "forward"):
        _recording(state.runner, name, seen)
    return build_app(state), seen


async def _until_ready(state) -> None:
    for _ in range(600):
        if state.ready:
            break
        await asyncio.sleep(0.05)
    assert state.ready, state.load_error


def test_load_warm_up_prepare_and_forward_share_one_thread(tiny_models):
    from workbench.serving.app import ServerState
    from workbench.serving.args import parse_serve_args

    state = ServerState(parse_serve_args(["--model_dir", tiny_models("token_classification")]))
    app, seen = _recorded_app(state)

    async def scenario() -> list:
        async with app.router.lifespan_context(app):
            await _until_ready(state)
            texts = ["EU rejects German call", "Peter Blackburn", "BRUSSELS 1996-08-22"]
            answers = await asyncio.gather(*(state.predictor.predict([text]) for text in texts))
            answers.append(await state.predictor.predict(texts))
            return answers

    answers = asyncio.run(scenario())
    assert len(answers) == 4 and all(answer.inferences for answer in answers)
    assert set(seen) == {"load", "warm_up", "prepare", "forward"}, seen
    threads = set().union(*seen.values())
    assert len(threads) == 1, f"torch ran on {len(threads)} threads: {seen}"
    assert threading.get_ident() not in threads  # not the event loop's


def test_with_two_workers_torch_runs_only_on_their_two_threads(tiny_models):
    from workbench.serving.app import ServerState
    from workbench.serving.args import parse_serve_args

    state = ServerState(parse_serve_args(["--model_dir", tiny_models("token_classification"), "--model_workers", "2",
                                          "--max_batch_size", "1"]))
    app, seen = _recorded_app(state)
    alone: dict[str, list] = {}

    async def scenario() -> list:
        async with app.router.lifespan_context(app):
            await _until_ready(state)
            texts = [f"text number {i} from Berlin to Paris" + " again" * i for i in range(12)]
            for text in texts[:3]:
                alone[text] = (await state.predictor.predict([text])).inferences
            together = await asyncio.gather(*(state.predictor.predict([text]) for text in texts))
            return list(zip(texts, together))

    pairs = asyncio.run(scenario())
    assert len(seen["load"]) == 1 and len(seen["warm_up"]) == 2  # loaded once, warmed up on each worker
    workers = seen["warm_up"]
    assert seen["load"] <= workers and seen["forward"] <= workers and seen["prepare"] <= workers
    assert threading.get_ident() not in workers
    assert len(seen["forward"]) == 2, "12 concurrent single-text batches never reached the second worker"
    for text, answer in pairs:  # whichever worker ran it, the same answer as alone
        if text in alone:
            assert answer.inferences == alone[text]
