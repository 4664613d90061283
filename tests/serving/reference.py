"""The differential reference: the same model run directly in transformers, its outputs shaped
the way KServe's Hugging Face runtime shapes them (encoder_model.py, KServe 0.20), written
plainly and independently of workbench.serving so a shared mistake cannot hide."""

from __future__ import annotations

import torch
from transformers import (AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer)

CLASSES = {"token_classification": AutoModelForTokenClassification,
           "sequence_classification": AutoModelForSequenceClassification,
           "fill_mask": AutoModelForMaskedLM}


class KServeReference:
    def __init__(self, model_dir: str, task: str, lower_case: bool = True, add_special_tokens: bool = True,
                 max_length: int | None = None, dtype: torch.dtype = torch.float32):
        self.task = task
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, do_lower_case=lower_case)
        self.model = CLASSES[task].from_pretrained(model_dir, dtype=dtype).eval()
        self.add_special_tokens = add_special_tokens
        self.max_length = max_length or self.model.config.max_position_embeddings

    def encode(self, texts):
        return self.tokenizer(texts, max_length=self.max_length, add_special_tokens=self.add_special_tokens,
                              return_tensors="pt", padding=True, truncation=True)

    @torch.no_grad()
    def logits(self, texts):
        inputs = self.encode(texts)
        return self.model(**inputs).logits, inputs["input_ids"]

    def predict(self, texts, mode: str = "default"):
        """KServe's `inferences` list (before JSON or V2 encoding)."""
        logits, input_ids = self.logits(texts)
        out = []
        for i in range(logits.shape[0]):
            if self.task == "token_classification":
                row = logits[i].unsqueeze(0)
                if mode == "logits":
                    out.append([{j: v[j].item() for j in range(v.size(0))} for v in row.squeeze(0)])
                elif mode == "probabilities":
                    probs = torch.softmax(row, dim=-1).squeeze(0)
                    out.append([{j: float(f"{v[j]:.4f}") for j in range(v.size(0))} for v in probs])
                else:
                    out.append(torch.argmax(row, dim=2).tolist())
            elif self.task == "sequence_classification":
                row = logits[i].unsqueeze(0)
                if mode == "logits":
                    v = row.squeeze()
                    out.append({j: v[j].item() for j in range(v.size(0))})
                elif mode == "probabilities":
                    p = torch.softmax(row, dim=-1).squeeze()
                    out.append({j: float(f"{p[j]:.4f}") for j in range(p.size(0))})
                else:
                    out.append(row.argmax().item())
            else:
                positions = [j for j in range(input_ids.shape[1]) if input_ids[i, j].item() == self.tokenizer.mask_token_id]
                masked = logits[i, torch.tensor(positions)]
                if mode == "logits":
                    out.append([[{t: v.item()} for t, v in enumerate(r)] for r in masked])
                elif mode == "probabilities":
                    out.append([[{t: f"{v.item():.4f}"} for t, v in enumerate(r)] for r in torch.softmax(masked, -1)])
                else:
                    out.append(self.tokenizer.decode(masked.argmax(dim=-1)))
        return out
