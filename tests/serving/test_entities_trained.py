"""A model fine-tuned by train/ner.py on the project's sample, served: a sample sentence's entities come
back with the trained label names and character offsets into the original text.

Training runs in-process (`workbench.ner.train.main`, what train/ner.py calls) from a tiny BERT with a
normal initialisation (the shared tiny models use a wide one that keeps logits apart but trains badly).
The quick test trains a few steps and checks label names, offsets that slice back to `word` and agreement
with transformers' pipeline; the slow one trains long enough to find Lisa as a person and Paris as a place.
"""

from __future__ import annotations

import pytest

from workbench.testsupport.servers import served

QUICK_STEPS = 8  # names and offsets only: a few seconds of training
LEARNED_STEPS = 60  # Lisa and Paris found: ~40 s of training on a busy 2-core machine, so marked slow
SENTENCE = "My name is Lisa and I live in Paris ."
ENTITY_TYPES = {"PER", "ORG", "LOC", "MISC"}


def tiny_trainable_model(directory) -> str:
    import torch
    from transformers import AutoConfig, BertForTokenClassification

    from workbench.testsupport.tiny_models import build_tiny_model

    path = build_tiny_model("token_classification", directory, max_position_embeddings=64)
    config = AutoConfig.from_pretrained(path)
    config.initializer_range = 0.02
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(path)
    return str(path)


def train(tmp_path_factory, steps: int) -> str:
    from workbench.ner.train import main

    start = tiny_trainable_model(tmp_path_factory.mktemp("ner-start"))
    output = tmp_path_factory.mktemp(f"ner-trained-{steps}")
    code = main(["--model_name_or_path", start, "--output_dir", str(output), "--max_train_steps", str(steps),
                 "--per_device_train_batch_size", "16", "--learning_rate", "1e-2", "--warmup_ratio", "0.05",
                 "--max_length", "64", "--max_eval_samples", "20", "--seed", "1", "--disable_tqdm"])
    assert code == 0
    return str(output)


@pytest.fixture(scope="module")
def trained_url(request, tmp_path_factory):
    model_dir = train(tmp_path_factory, steps=request.param)
    with served(model_dir) as url:
        yield model_dir, url


def entities(url: str, texts, **parameters):
    import httpx

    response = httpx.post(f"{url}/models/model", json={"inputs": texts, "parameters": parameters}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def check_offsets(text: str, found: list[dict]) -> None:
    for entity in found:
        assert text[entity["start"]:entity["end"]] == entity["word"], entity
        assert 0.0 <= entity["score"] <= 1.0


@pytest.mark.parametrize("trained_url", [QUICK_STEPS], indirect=True)
def test_trained_model_entities_have_label_names_and_offsets(trained_url):
    from transformers import pipeline

    model_dir, url = trained_url
    texts = [SENTENCE, "John Carter works for Atlas Motors in Berlin ."]
    tokens = entities(url, texts, aggregation_strategy="none", ignore_labels=[])
    grouped = entities(url, texts, aggregation_strategy="simple")
    reference = pipeline("token-classification", model=model_dir)
    for text, per_token, per_group, expected in zip(texts, tokens, grouped,
                                                     reference(texts, aggregation_strategy="simple")):
        assert per_token, "every token is labelled when nothing is ignored"
        assert {e["entity"] for e in per_token} <= {"O"} | {f"{p}-{t}" for p in "BI" for t in ENTITY_TYPES}
        assert {e["entity_group"] for e in per_group} <= ENTITY_TYPES
        check_offsets(text, per_token)
        check_offsets(text, per_group)
        assert [(e["entity_group"], e["start"], e["end"]) for e in per_group] == \
            [(e["entity_group"], e["start"], e["end"]) for e in expected]


@pytest.mark.slow
@pytest.mark.parametrize("trained_url", [LEARNED_STEPS], indirect=True)
def test_trained_model_finds_the_person_and_the_place(trained_url):
    _, url = trained_url
    found = entities(url, SENTENCE, aggregation_strategy="first")
    check_offsets(SENTENCE, found)
    assert ("PER", "Lisa", 11, 15) in [(e["entity_group"], e["word"], e["start"], e["end"]) for e in found], found
    assert ("LOC", "Paris", 30, 35) in [(e["entity_group"], e["word"], e["start"], e["end"]) for e in found], found
