"""Which task a model serves and which output mode the server was started with."""

from __future__ import annotations

import enum

SUFFIX_TO_TASK = {
    "ForTokenClassification": "token_classification",
    "ForSequenceClassification": "sequence_classification",
    "ForMaskedLM": "fill_mask",
}


class Mode(str, enum.Enum):
    DEFAULT = "default"  # label ids / decoded tokens
    PROBABILITIES = "probabilities"  # softmax, rounded to 4 places
    LOGITS = "logits"  # raw logits, unrounded


def infer_task(architectures: list[str] | None) -> str:
    """The task from `config.architectures[0]`'s suffix, as KServe's runtime infers it."""
    if not architectures:
        raise ValueError("the model config has no `architectures`; pass --task explicitly")
    name = architectures[0]
    for suffix, task in SUFFIX_TO_TASK.items():
        if name.endswith(suffix):
            return task
    raise ValueError(
        f"cannot infer the task from architecture {name!r}; pass --task "
        f"(one of {', '.join(SUFFIX_TO_TASK.values())})"
    )
