"""Tiny BERT models built in code, for tests and offline demos.

Nothing here touches the Hugging Face Hub: the WordPiece vocabulary is written by this module,
the weights are randomly initialised from a fixed seed, and the result is saved with
`save_pretrained` so that it loads exactly like a downloaded model directory.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

from workbench.tasks import TASKS

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Words chosen so that the seed examples and the project's own sample sentences tokenize mostly
# into whole words, while rarer words (e.g. "lamb", "wolfgang") split into sub-words.
WORDS = """
the a an of to in and is are was were be been i you he she it we they my your his her its our their
me him us them this that these those there here what who where when why how which not no yes
name live lives lived living work works worked company based city country capital river team club
new york paris berlin london france germany england spain italy europe america china japan india
lisa john mary peter anna paul maria george david sarah james emma tom alice bob
hello dog cat cute sad happy good bad great terrible love hate like feel feeling am am movie film
food place today yesterday tomorrow monday friday year years day days week time people man woman
said says say told visit visited plays played play won lost match game goal minister president
government bank market price prices shares percent million billion report reports news
university school hospital street north south east west central national international
at on for with by from as about after before over under between into during without
will would can could should may might must do does did has have had make made go went come came
one two three four five six seven eight nine ten first second last next
big small old young long short high low early late more most less least very much many
""".split()

SUBWORDS = ["##s", "##ed", "##ing", "##er", "##ly", "##mb", "##ang", "##face", "##ng", "##ion", "##es"]


def write_vocab(directory: Path, cased: bool = False) -> Path:
    """Write a WordPiece `vocab.txt` into `directory` and return its path."""
    tokens: list[str] = list(SPECIAL_TOKENS)
    seen = set(tokens)

    def add(token: str) -> None:
        if token not in seen:
            seen.add(token)
            tokens.append(token)

    for ch in string.punctuation + string.digits + string.ascii_lowercase:
        add(ch)
    if cased:
        for ch in string.ascii_uppercase:
            add(ch)
    for ch in string.digits + string.ascii_lowercase:
        add("##" + ch)
    if cased:
        for ch in string.ascii_uppercase:
            add("##" + ch)
    for word in WORDS:
        add(word)
        if cased:
            add(word.capitalize())
    for sub in SUBWORDS:
        add(sub)
    for two in ("la", "wo", "lf", "hu", "gg", "in", "on", "er", "ber", "ly"):
        add(two)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


CONLL_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SENTIMENT_LABELS = ["NEGATIVE", "POSITIVE"]


def tiny_bert_config(vocab_size: int, **overrides):
    from transformers import BertConfig

    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        # A wide initialisation keeps logits well apart, so argmax is never a near-tie that float
        # noise between batch compositions could flip.
        initializer_range=0.5,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def build_tiny_model(
    task: str,
    directory: str | Path,
    *,
    seed: int = 0,
    cased: bool = False,
    labels: list[str] | None = None,
    max_position_embeddings: int = 128,
) -> Path:
    """Build a tiny randomly initialised BERT for `task` and save model + tokenizer into `directory`.

    task: "token_classification" | "sequence_classification" | "fill_mask" | "text_embedding" (a headless
    `BertModel`, whose architecture name infers text_embedding).
    cased: write a cased vocabulary and a tokenizer with do_lower_case=False.
    """
    import torch
    from transformers import (
        BertForMaskedLM,
        BertForSequenceClassification,
        BertForTokenClassification,
        BertModel,
        BertTokenizerFast,
    )

    directory = Path(directory)
    vocab_path = write_vocab(directory, cased=cased)
    tokenizer = BertTokenizerFast(vocab=str(vocab_path), do_lower_case=not cased)
    tokenizer.model_max_length = max_position_embeddings
    vocab_size = len(vocab_path.read_text(encoding="utf-8").splitlines())

    torch.manual_seed(seed)
    classifiers = {"token_classification": (BertForTokenClassification, CONLL_LABELS),
                   "sequence_classification": (BertForSequenceClassification, SENTIMENT_LABELS)}
    if task in classifiers:
        model_class, default_labels = classifiers[task]
        labels = labels or default_labels
        config = tiny_bert_config(
            vocab_size,
            max_position_embeddings=max_position_embeddings,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
        model = model_class(config)
    elif task == "fill_mask":
        config = tiny_bert_config(vocab_size, max_position_embeddings=max_position_embeddings)
        model = BertForMaskedLM(config)
    elif task == "text_embedding":
        config = tiny_bert_config(vocab_size, max_position_embeddings=max_position_embeddings)
        model = BertModel(config)
    else:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    model.eval()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a 200 kB model needs no "Writing model shards" bar
    try:
        model.save_pretrained(directory)
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench tiny-model", description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cased", action="store_true", help="cased vocabulary, tokenizer without lowercasing")
    args = parser.parse_args(argv)
    path = build_tiny_model(args.task, args.directory, seed=args.seed, cased=args.cased)
    print(f"wrote a tiny {args.task} model to {path}")
    return 0
