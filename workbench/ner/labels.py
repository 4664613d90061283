"""Label lists: which tags, in which order, and how a `B-X` continues as `I-X`."""

from __future__ import annotations

from typing import Iterable, Sequence

# The order of the conll2003 dataset's `ner_tags` ClassLabel (and of most models trained on it).
CONLL2003_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def label_list_from_tags(tag_sequences: Iterable[Sequence[str]]) -> list[str]:
    """The label list for some data.

    The nine conll2003 labels, in the dataset's order, when every tag is one of them (so the
    ids match models trained on conll2003); otherwise `O` first, then for each entity type in
    alphabetical order its `B-` and `I-` labels (both, even when the data lacks one).
    """
    seen = {tag for tags in tag_sequences for tag in tags}
    if seen <= set(CONLL2003_LABELS):
        return list(CONLL2003_LABELS)
    kinds = sorted({tag[2:] for tag in seen if tag != "O"})
    return ["O"] + [f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I")]


def parse_label_names(text: str) -> list[str]:
    """`--label_names "O,B-PER,I-PER"` -> a list; duplicates are an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--label_names has duplicates: {text!r}")
    if not names:
        raise ValueError("--label_names is empty")
    return names


def continuation_ids(label_list: Sequence[str]) -> list[int]:
    """For each label id, the id a continuation sub-token gets: `B-X` -> `I-X` (when it exists)."""
    index = {label: i for i, label in enumerate(label_list)}
    result = []
    for i, label in enumerate(label_list):
        if label.startswith("B-") and "I-" + label[2:] in index:
            result.append(index["I-" + label[2:]])
        else:
            result.append(i)
    return result


def check_tags_known(tag_sequences: Iterable[Sequence[str]], label_list: Sequence[str], where: str) -> None:
    known = set(label_list)
    unknown = sorted({tag for tags in tag_sequences for tag in tags} - known)
    if unknown:
        raise ValueError(f"{where}: tags {unknown} are not in the label list {list(label_list)}")
