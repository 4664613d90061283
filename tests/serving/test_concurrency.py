"""Many concurrent requests of different lengths through one batching queue: each gets exactly
the answer it gets alone (and the reference's), whatever it was batched with."""

from __future__ import annotations

import asyncio
import random

import httpx

from tests.serving.reference import KServeReference

WORDS = "my name is lisa and i live in paris the capital of france hello dog cute sad london new york".split()


def random_requests(count: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(rng.randint(1, 4))]
        requests.append(texts)
    return requests


async def fire(url: str, requests: list[list[str]], protocol: str) -> list:
    async with httpx.AsyncClient(timeout=120.0) as client:
        async def one(i, texts):
            if protocol == "v1":
                r = await client.post(f"{url}/v1/models/model:predict", json={"instances": texts})
                assert r.status_code == 200, r.text
                return r.json()["predictions"]
            body = {"id": f"req-{i}", "inputs": [{"name": "t", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
            r = await client.post(f"{url}/v2/models/model/infer", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["id"] == f"req-{i}"
            return r.json()["outputs"][0]
        return await asyncio.gather(*(one(i, t) for i, t in enumerate(requests)))


def test_concurrent_v1_requests_each_get_their_own_answer(server, tiny_models):
    url = server("token_classification", "--max_batch_delay_ms", "5")
    requests = random_requests(48)
    answers = asyncio.run(fire(url, requests, "v1"))
    reference = KServeReference(tiny_models("token_classification"), "token_classification")
    for texts, answer in zip(requests, answers):
        assert answer == reference.predict(texts)


def test_concurrent_v2_requests_keep_ids_shapes_and_values(server, tiny_models):
    url = server("token_classification", "--max_batch_delay_ms", "5")
    requests = random_requests(32, seed=1)
    outputs = asyncio.run(fire(url, requests, "v2"))
    reference = KServeReference(tiny_models("token_classification"), "token_classification")
    for texts, output in zip(requests, outputs):
        expected = reference.predict(texts)
        assert output["shape"] == [len(texts), 1, len(expected[0][0])]
        assert output["data"] == [v for row in expected for v in row[0]]


def test_sequence_classification_under_concurrency_matches_sequential(server):
    url = server("sequence_classification", "--return_probabilities", "--max_batch_size", "4")
    requests = random_requests(24, seed=2)
    concurrent = asyncio.run(fire(url, requests, "v1"))
    with httpx.Client(timeout=60) as client:
        sequential = [client.post(f"{url}/v1/models/model:predict", json={"instances": t}).json()["predictions"]
                      for t in requests]
    for a, b in zip(concurrent, sequential):
        for x, y in zip(a, b):
            assert x.keys() == y.keys() and all(abs(x[k] - y[k]) <= 1.01e-4 for k in x)
