"""Expected outputs computed locally with transformers (`--reference-model DIR_OR_ID`).

The computation follows KServe's Hugging Face runtime (reference doc §1): all texts of a request are
tokenized together with padding and truncation, lowercased unless the endpoint runs with
`--disable_lower_case`, one forward pass, then the runtime's post-processing, transcribed here on its own (no code is shared with
any server the suite checks) and tested against KServe's real runtime (tests/kserve_runtime). The result is
turned into canonical rows by `semantics.v1_rows`.

KServe's post-processing (huggingfaceserver `encoder_model.py`), per text:
  sequence classification: argmax id | {label: softmax rounded to 4 places} | {label: raw logit}
  token classification:    [[id per position]] (1xS) | S dicts of rounded probabilities | S dicts of logits
  fill mask:               decoded argmax token(s) at the mask positions | per mask a V-long list of
                           one-entry dicts {token_id: "0.1234"} (probabilities as 4-place *strings*) or
                           {token_id: logit}
  text embedding:          the base model's last hidden state, mean-pooled over the attention mask, then
                           L2-normalised: D floats (`_process_text_embedding`, `_mean_pooling`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conformance import semantics


@dataclass
class ReferenceModel:
    source: str
    task: str
    lower_case: bool = True
    add_special_tokens: bool = True
    _tokenizer: Any = field(default=None, repr=False)
    _network: Any = field(default=None, repr=False)

    def _load(self) -> None:
        if self._tokenizer is not None:
            return
        from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        classes = {"token_classification": AutoModelForTokenClassification,
                   "sequence_classification": AutoModelForSequenceClassification,
                   "fill_mask": AutoModelForMaskedLM, semantics.TEXT_EMBEDDING: AutoModel}
        self._tokenizer = AutoTokenizer.from_pretrained(self.source, do_lower_case=self.lower_case)
        self._network = classes[self.task].from_pretrained(self.source)
        self._network.eval()

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    @property
    def num_labels(self) -> int | None:
        self._load()
        return None if self.task in ("fill_mask", semantics.TEXT_EMBEDDING) else int(self._network.config.num_labels)

    @property
    def vocab_size(self) -> int:
        self._load()
        return int(self._network.config.vocab_size)

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token or "[MASK]"

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Tokenized length of each text alone (special tokens included, no padding)."""
        encoded = self.tokenizer(list(texts), add_special_tokens=self.add_special_tokens, truncation=True)
        return [len(ids) for ids in encoded["input_ids"]]

    def predictions(self, texts: list[str], mode: str) -> Any:
        """What the runtime's V1 `predictions` would be, as JSON (integer dict keys become strings)."""
        import torch

        self._load()
        encoded = self._tokenizer(list(texts), add_special_tokens=self.add_special_tokens, return_tensors="pt",
                                  padding=True, truncation=True)
        with torch.no_grad():
            output = self._network(**encoded, return_dict=True)
        if self.task == semantics.TEXT_EMBEDDING:
            return _embeddings(output.last_hidden_state, encoded["attention_mask"])
        logits = output.logits
        if self.task == "fill_mask":
            mask_id = self._tokenizer.mask_token_id
            result = [_fill_mask_answer(row_logits[row_ids == mask_id], mode, self._tokenizer)
                      for row_logits, row_ids in zip(logits, encoded["input_ids"])]
        elif self.task == "token_classification":
            result = [_token_answer(row_logits, mode) for row_logits in logits]
        else:
            result = [_class_answer(row_logits, mode) for row_logits in logits]
        return json.loads(json.dumps(result))

    def rows(self, texts: list[str], mode: str) -> list:
        return semantics.v1_rows(self.task, mode, self.predictions(texts, mode), len(texts))


def _scores(values, mode: str, *, as_text: bool = False) -> dict[int, Any]:
    """{index: value} for one row of logits: the logits, or softmax rounded to 4 places."""
    import torch

    if mode == "logits":
        return {index: float(value) for index, value in enumerate(values.tolist())}
    rounded = [f"{p:.4f}" for p in torch.softmax(values, dim=-1).tolist()]
    return {index: (text if as_text else float(text)) for index, text in enumerate(rounded)}


def _embeddings(hidden, attention_mask) -> list[list[float]]:
    """Mean of the token vectors the attention mask keeps, then unit L2 norm (float32, as the runtime)."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / torch.clamp(mask.sum(dim=1), min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1).tolist()


def _class_answer(values, mode: str) -> Any:
    return int(values.argmax()) if mode == "default" else _scores(values, mode)


def _token_answer(positions, mode: str) -> Any:
    if mode == "default":
        return [[int(label) for label in positions.argmax(dim=-1)]]
    return [_scores(values, mode) for values in positions]


def _fill_mask_answer(masked, mode: str, tokenizer) -> Any:
    """masked: [M, V] logits at the text's mask positions."""
    if mode == "default":
        return tokenizer.decode(masked.argmax(dim=-1))
    return [[{token: value} for token, value in _scores(values, mode, as_text=True).items()] for values in masked]
