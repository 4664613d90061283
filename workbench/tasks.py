"""Tasks and output modes: the one place that names them.

Everything that needs to know which tasks exist, which output modes a server can be started in,
which command-line flag selects a mode, which transformers class serves a task, or how a task is
inferred from a model's config imports it from here: the predictor, the conformance suite, the
gate, the manifests, the tiny models and the KServe stand-in.

No heavy imports: the model classes are named, not imported.
"""

from __future__ import annotations

import enum

TOKEN_CLASSIFICATION = "token_classification"
SEQUENCE_CLASSIFICATION = "sequence_classification"
FILL_MASK = "fill_mask"
# KServe's fourth encoder task: the base model's last hidden state, mean-pooled over the attention mask,
# then L2-normalised (one FP32 vector per text).
TEXT_EMBEDDING = "text_embedding"

TASKS: tuple[str, ...] = (TOKEN_CLASSIFICATION, SEQUENCE_CLASSIFICATION, FILL_MASK, TEXT_EMBEDDING)
# The tasks with a head whose logits the output modes (ids / probabilities / logits) choose between.
LOGIT_TASKS: tuple[str, ...] = (TOKEN_CLASSIFICATION, SEQUENCE_CLASSIFICATION, FILL_MASK)

# config.architectures[0] suffix -> task, as KServe's Hugging Face runtime infers a task.
SUFFIX_TO_TASK: dict[str, str] = {
    "ForTokenClassification": TOKEN_CLASSIFICATION,
    "ForSequenceClassification": SEQUENCE_CLASSIFICATION,
    "ForMaskedLM": FILL_MASK,
}

# task -> the transformers Auto class that loads its model.
MODEL_CLASSES: dict[str, str] = {
    TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
    SEQUENCE_CLASSIFICATION: "AutoModelForSequenceClassification",
    FILL_MASK: "AutoModelForMaskedLM",
    TEXT_EMBEDDING: "AutoModel",
}

# An architecture with no task head (`BertModel`, `MPNetModel`: the name ends in "Model") is served as
# text_embedding. KServe's runtime cannot infer this (it needs `--task text_embedding`); these names,
# which also end in "Model", are KServe's sequence-to-sequence ones and stay refused.
BASE_MODEL_SUFFIX = "Model"
NOT_BASE_MODELS: tuple[str, ...] = ("MTModel", "EncoderDecoderModel")


class Mode(str, enum.Enum):
    DEFAULT = "default"  # label ids / decoded tokens
    PROBABILITIES = "probabilities"  # softmax, rounded to 4 places
    LOGITS = "logits"  # raw logits, unrounded


MODES: tuple[str, ...] = tuple(mode.value for mode in Mode)

# mode -> the server flags that select it (KServe's spellings).
MODE_FLAGS: dict[str, tuple[str, ...]] = {
    Mode.DEFAULT.value: (),
    Mode.PROBABILITIES.value: ("--return_probabilities",),
    Mode.LOGITS.value: ("--return_raw_logits",),
}


def infer_task(architectures: list[str] | None) -> str:
    """The task from `config.architectures[0]`'s suffix, as KServe's runtime infers it; in addition, a
    base model without a head (`BertModel`) is text_embedding."""
    if not architectures:
        raise ValueError("the model config has no `architectures`; pass --task explicitly")
    name = architectures[0]
    for suffix, task in SUFFIX_TO_TASK.items():
        if name.endswith(suffix):
            return task
    if name.endswith(BASE_MODEL_SUFFIX) and not name.endswith(NOT_BASE_MODELS):
        return TEXT_EMBEDDING
    raise ValueError(
        f"cannot infer the task from architecture {name!r}; pass --task (one of {', '.join(TASKS)})"
    )


def task_modes(task: str) -> tuple[str, ...]:
    """The output modes `task` can be served in: text_embedding has one (the normalised vectors)."""
    return MODES if task in LOGIT_TASKS else (Mode.DEFAULT.value,)


def model_class(task: str):
    """The transformers Auto class for `task` (imports transformers)."""
    import transformers

    if task not in MODEL_CLASSES:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    return getattr(transformers, MODEL_CLASSES[task])
