"""Expected outputs computed locally with transformers (`--reference-model DIR_OR_ID`).

The computation follows KServe's Hugging Face runtime (reference doc §1): all texts of a request are
tokenized together with padding and truncation, lowercased unless the endpoint runs with
`--disable_lower_case`, one forward pass, then the runtime's post-processing (shared with
`workbench.testsupport.kserve_modelserver`). The result is turned into canonical rows by `semantics.v1_rows`.
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
        from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification
        from transformers import AutoTokenizer

        classes = {"token_classification": AutoModelForTokenClassification,
                   "sequence_classification": AutoModelForSequenceClassification,
                   "fill_mask": AutoModelForMaskedLM}
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
        return None if self.task == "fill_mask" else int(self._network.config.num_labels)

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

        from workbench.testsupport.kserve_modelserver import (
            postprocess_fill_mask,
            postprocess_sequence_classification,
            postprocess_token_classification,
        )

        self._load()
        encoded = self._tokenizer(list(texts), add_special_tokens=self.add_special_tokens, return_tensors="pt",
                                  padding=True, truncation=True)
        with torch.no_grad():
            logits = self._network(**encoded, return_dict=True).logits
        flags = dict(probabilities=mode == "probabilities", raw_logits=mode == "logits")
        if self.task == "token_classification":
            result = postprocess_token_classification(logits, **flags)
        elif self.task == "sequence_classification":
            result = postprocess_sequence_classification(logits, **flags)
        else:
            result = postprocess_fill_mask(logits, encoded["input_ids"], self._tokenizer, **flags)
        return json.loads(json.dumps(result))

    def rows(self, texts: list[str], mode: str) -> list:
        return semantics.v1_rows(self.task, mode, self.predictions(texts, mode), len(texts))
