"""seqeval as a local `evaluate` module: entity-level precision, recall and F1 for sequence labelling.

The hub's `evaluate.load("seqeval")` needs the network; this module is loaded by path instead:

    import evaluate
    from workbench.metrics.seqeval import MODULE_DIR
    metric = evaluate.load(str(MODULE_DIR))
    metric.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])

`compute` returns `overall_precision`, `overall_recall`, `overall_f1`, `overall_accuracy` (token
accuracy) and one entry per entity type `{"precision", "recall", "f1", "number"}` (number = gold
entities of that type). Default mode follows conlleval (an `I-X` after `O` still starts an
entity); `mode="strict", scheme="IOB2"` counts only well-formed IOB2 entities.
"""

from __future__ import annotations

import datasets
import evaluate

_DESCRIPTION = __doc__
_CITATION = """\
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018},
}
"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted tag sequences (strings).
    references: list of gold tag sequences (strings), same shape as predictions.
    mode: None (conlleval-compatible) or "strict".
    scheme: tagging scheme name for strict mode: "IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU".
    suffix: True when the entity type comes before the tag ("PER-B").
    zero_division: value when a ratio has a zero denominator: 0, 1 or "warn".
Returns:
    dict with overall_precision, overall_recall, overall_f1, overall_accuracy and per-entity dicts.
"""


def _scheme_class(name: str | None):
    if name is None:
        return None
    import seqeval.scheme

    try:
        return getattr(seqeval.scheme, name)
    except AttributeError:
        raise ValueError(f"unknown tagging scheme {name!r}") from None


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
                "references": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
            }),
            codebase_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references, mode=None, scheme=None, suffix=False, zero_division="warn"):
        from seqeval.metrics import accuracy_score, classification_report

        if mode is not None and mode != "strict":
            raise ValueError(f"mode must be None or 'strict', got {mode!r}")
        scheme_class = _scheme_class(scheme)
        if mode == "strict" and scheme_class is None:
            raise ValueError("strict mode needs a scheme, e.g. scheme='IOB2'")
        report = classification_report(
            y_true=references, y_pred=predictions, suffix=suffix, output_dict=True,
            mode=mode, scheme=scheme_class, zero_division=zero_division,
        )
        report.pop("macro avg", None)
        report.pop("weighted avg", None)
        overall = report.pop("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        scores = {
            kind: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                   "f1": float(v["f1-score"]), "number": int(v["support"])}
            for kind, v in report.items()
        }
        scores["overall_precision"] = float(overall["precision"])
        scores["overall_recall"] = float(overall["recall"])
        scores["overall_f1"] = float(overall["f1-score"])
        scores["overall_accuracy"] = float(accuracy_score(y_true=references, y_pred=predictions))
        return scores
