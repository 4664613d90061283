"""The --dataset_name path, offline: a local directory of parquet files stands in for a hub dataset
(`datasets.load_dataset` reads both the same way; the Hub itself cannot be reached here)."""

from datasets import ClassLabel, Dataset, Features, Sequence, Value

from workbench.ner.data import load_hub_splits
from workbench.ner.labels import CONLL2003_LABELS


def test_hub_style_dataset_with_class_label_names(tmp_path):
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=CONLL2003_LABELS))})
    rows = {"tokens": [["Lisa", "lives", "in", "Paris"], []], "ner_tags": [[1, 0, 0, 5], []]}
    for split in ("train", "validation"):
        Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / f"{split}.parquet"))
    splits, names = load_hub_splits(str(tmp_path))
    assert names == CONLL2003_LABELS
    assert set(splits) == {"train", "validation"}
    assert len(splits["train"]) == 1  # the empty sentence is dropped
    assert splits["train"][0].tags == ["B-PER", "O", "O", "B-LOC"]
