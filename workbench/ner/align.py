"""Align word-level labels with sub-tokens: pure functions over `word_ids`.

Each word's label goes on its first sub-token. Continuation sub-tokens get either the word's
label with `B-X` turned into `I-X` (the course's rule) or -100 (`first_subtoken_only`), and
special tokens always get -100 so the loss and the metrics ignore them.
"""

from __future__ import annotations

from typing import Sequence

IGNORE_INDEX = -100


def align_labels_with_tokens(
    labels: Sequence[int],
    word_ids: Sequence[int | None],
    continuation: Sequence[int],
    first_subtoken_only: bool = False,
) -> list[int]:
    """Sub-token labels for one sentence.

    labels: one label id per word. word_ids: the tokenizer's word index per sub-token (None for
    special tokens). continuation: label id -> the id its continuation sub-tokens get. A word labelled
    -100 (a context word, with --document_context) gets -100 on all its sub-tokens.
    """
    aligned: list[int] = []
    previous: int | None = None
    for word_id in word_ids:
        if word_id is None or labels[word_id] == IGNORE_INDEX:
            aligned.append(IGNORE_INDEX)
        elif word_id != previous:
            aligned.append(labels[word_id])
        elif first_subtoken_only:
            aligned.append(IGNORE_INDEX)
        else:
            aligned.append(continuation[labels[word_id]])
        previous = word_id
    return aligned


def count_truncated_words(num_words: int, word_ids: Sequence[int | None]) -> int:
    """How many of a sentence's words were cut off by truncation (0 when all fit)."""
    kept = [w for w in word_ids if w is not None]
    return num_words - (max(kept) + 1 if kept else 0)
