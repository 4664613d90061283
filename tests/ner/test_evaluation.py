import seqeval.metrics
from seqeval.scheme import IOB2

from workbench.ner.evaluation import decode_predictions, load_seqeval, score
from workbench.ner.labels import CONLL2003_LABELS

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O", "B-MISC"], ["I-LOC", "O"]]
PRED = [["B-PER", "I-PER", "O", "I-LOC"], ["O", "B-ORG", "O", "O", "B-MISC"], ["I-LOC", "O"]]


def test_decoding_skips_minus_100():
    predictions = [[0, 1, 2, 2, 5, 0], [3, 3, 0, 0, 0, 0]]
    labels = [[-100, 1, -100, 2, 5, -100], [-100, 3, -100, -100, -100, -100]]
    predicted, gold = decode_predictions(predictions, labels, CONLL2003_LABELS)
    assert predicted == [["B-PER", "I-PER", "B-LOC"], ["B-ORG"]]
    assert gold == [["B-PER", "I-PER", "B-LOC"], ["B-ORG"]]


def test_local_module_matches_the_seqeval_package():
    metric = load_seqeval()
    ours = metric.compute(predictions=PRED, references=GOLD, zero_division=0)
    report = seqeval.metrics.classification_report(GOLD, PRED, output_dict=True, zero_division=0)
    assert ours["overall_f1"] == report["micro avg"]["f1-score"] == seqeval.metrics.f1_score(GOLD, PRED)
    assert ours["overall_precision"] == seqeval.metrics.precision_score(GOLD, PRED)
    assert ours["overall_recall"] == seqeval.metrics.recall_score(GOLD, PRED)
    assert ours["overall_accuracy"] == seqeval.metrics.accuracy_score(GOLD, PRED)
    for kind in ("PER", "ORG", "LOC", "MISC"):
        assert ours[kind] == {"precision": report[kind]["precision"], "recall": report[kind]["recall"],
                              "f1": report[kind]["f1-score"], "number": report[kind]["support"]}
    strict = metric.compute(predictions=PRED, references=GOLD, mode="strict", scheme="IOB2", zero_division=0)
    assert strict["overall_f1"] == seqeval.metrics.f1_score(GOLD, PRED, mode="strict", scheme=IOB2)
    assert strict["overall_f1"] < ours["overall_f1"]  # an entity starting with I- only counts by default


def test_score_shape_with_strict_block():
    result = score(load_seqeval(), PRED, GOLD, strict=True)
    assert set(result["per_entity"]) == {"PER", "ORG", "LOC", "MISC"}
    assert {"overall_f1", "overall_precision", "overall_recall", "overall_accuracy"} <= set(result)
    assert set(result["strict"]["per_entity"]["LOC"]) == {"precision", "recall", "f1", "number"}
