"""`workbench demo`: build tiny models on the spot, serve each with the built-in predictor and
answer the seed examples' V1 and V2 requests, printing each request as a curl command and its answer.

Everything is offline: the models are random tiny BERTs with a vocabulary the project writes, so the
labels are meaningless; the shapes, datatypes and routes are exactly what a real model gets.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import httpx

SAMPLES = {
    "token_classification": ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris"],
    "sequence_classification": ["Hello, my dog is cute", "I am feeling sad"],
    "fill_mask": ["The capital of France is [MASK].", "The capital of [MASK] is paris."],
    "text_embedding": ["The capital of France is Paris", "Berlin"],
}
FLAGS = {"token_classification": [], "sequence_classification": ["--return_probabilities"], "fill_mask": [],
         "text_embedding": []}  # a headless BertModel: the task is inferred


def show(title: str, url: str, path: str, body: dict, response: httpx.Response) -> None:
    print(f"\n$ curl -H 'Content-Type: application/json' {url}{path} -d '{json.dumps(body)}'")
    text = json.dumps(response.json())
    print(f"{response.status_code} {text[:400]}{' ...' if len(text) > 400 else ''}")


def run_task(task: str, directory: Path) -> None:
    from workbench.testsupport.servers import served
    from workbench.testsupport.tiny_models import build_tiny_model

    build_tiny_model(task, directory / task)
    texts = SAMPLES[task]
    flags = FLAGS[task]
    print(f"\n=== {task}: workbench serve --model_dir <tiny model> --model_name model {' '.join(flags)}")
    print("    (an untrained tiny model: the label ids, tokens and scores below are meaningless; the shapes, "
          "datatypes and routes are what a real model gets)")
    with served(directory / task, *flags) as url, httpx.Client(timeout=60) as http:
        v1_body = {"instances": texts}
        show("V1", url, "/v1/models/model:predict", v1_body, http.post(f"{url}/v1/models/model:predict", json=v1_body))
        v2_body = {"inputs": [{"name": "input-0", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        show("V2", url, "/v2/models/model/infer", v2_body, http.post(f"{url}/v2/models/model/infer", json=v2_body))
        if task == "text_embedding":
            body = {"model": "model", "input": texts}
            show("OpenAI", url, "/openai/v1/embeddings", body, http.post(f"{url}/openai/v1/embeddings", json=body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench demo", description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=list(SAMPLES), action="append",
                        help="only these tasks (default: all four)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="workbench-demo-") as tmp:
        for task in args.task or list(SAMPLES):
            run_task(task, Path(tmp))
    print("\nEvery answer above came from a real server over HTTP; see README.md for serving your own model.")
    return 0
