import pytest

from workbench.ner.labels import (
    CONLL2003_LABELS,
    check_tags_known,
    continuation_ids,
    label_list_from_tags,
    parse_label_names,
)


def test_conll_tags_keep_the_dataset_order():
    assert label_list_from_tags([["B-LOC", "O"], ["B-PER", "I-PER"]]) == CONLL2003_LABELS


def test_other_tags_sorted_by_type_with_b_and_i():
    assert label_list_from_tags([["B-DRUG", "O"], ["B-DOSE", "I-DRUG"]]) == ["O", "B-DOSE", "I-DOSE", "B-DRUG", "I-DRUG"]


def test_continuation_ids_turn_b_into_i():
    assert continuation_ids(CONLL2003_LABELS) == [0, 2, 2, 4, 4, 6, 6, 8, 8]
    assert continuation_ids(["O", "B-X"]) == [0, 1]  # no I-X: stays B-X


def test_label_names_parsing_and_checks():
    assert parse_label_names("O, B-PER ,I-PER") == ["O", "B-PER", "I-PER"]
    with pytest.raises(ValueError, match="duplicates"):
        parse_label_names("O,O")
    with pytest.raises(ValueError, match=r"train: tags \['B-FOO'\]"):
        check_tags_known([["B-FOO"]], CONLL2003_LABELS, "train")
