"""The OpenAI embeddings API as KServe's Hugging Face runtime serves it (`/openai/v1/...`). Pure functions.

- `parse_embedding_request`: `model`, `input` (a string or a list of strings), `encoding_format`
  (`float`, the default, or `base64`: the little-endian float32 bytes) and `dimensions` (only the model's
  own). Token-id inputs (`[1, 2]`, `[[1, 2]]`) are refused: the ids of another tokenizer (tiktoken's, which
  clients such as LangChain fall back to) would silently embed other text.
- `embedding_response`: the answer, field for field as KServe's runtime answers (`id`, `model`, `created`,
  `object`, `data[index, object, embedding]`, `usage{prompt_tokens, total_tokens}`), except that the top-level
  `object` is `"list"` as in OpenAI's API (KServe's runtime says `"embedding"`).
- `error_body`: OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`.

Where KServe's runtime fails and we answer (see docs/serving.md): a request without `encoding_format`
(its 500 "no attribute 'encoding_format'"; the openai client always sends one), token ids, an empty
`input`, a missing `model` or `input` (500s there, 400 here), and an unknown model (404 in KServe's
`{"error": "..."}` shape there, OpenAI's shape here).
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from workbench.serving.errors import BadRequest

PREFIX = "/openai/v1"
ENCODING_FORMATS = ("float", "base64")
TOKEN_IDS_REFUSED = ("'input' as token ids is not supported: this server tokenizes with the model's own tokenizer, "
                     "and ids from another one (e.g. tiktoken's) would embed other text; send the texts as strings")


class OpenAIRequestError(BadRequest):
    """A 4xx naming the request field at fault (OpenAI's `param`) and a machine-readable `code`."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status_code: int = 400):
        super().__init__(message, status_code)
        self.param = param
        self.code = code


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    texts: list[str]
    encoding_format: str = "float"
    dimensions: int | None = None


def _is_token_ids(value: Any) -> bool:
    """`[1, 2]` or `[[1, 2], ...]`: OpenAI's token-id inputs."""
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    if isinstance(first, list):
        return bool(first) and isinstance(first[0], int) and not isinstance(first[0], bool)
    return isinstance(first, int) and not isinstance(first, bool)


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate a `POST /openai/v1/embeddings` body; every mistake is an OpenAIRequestError."""
    if not isinstance(body, dict):
        raise OpenAIRequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIRequestError("'model' is required: the served model's name (GET /openai/v1/models lists it)",
                                 param="model")
    if "input" not in body or body["input"] is None:
        raise OpenAIRequestError("'input' is required: a string or a list of strings", param="input")
    value = body["input"]
    if _is_token_ids(value):
        raise OpenAIRequestError(TOKEN_IDS_REFUSED, param="input", code="unsupported_input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise OpenAIRequestError("'input' must be a string or a non-empty list of strings", param="input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise OpenAIRequestError(f"'input[{index}]' must be a string, got {type(text).__name__}", param="input")
    encoding = body.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if encoding not in ENCODING_FORMATS:
        raise OpenAIRequestError(f"'encoding_format' must be one of {list(ENCODING_FORMATS)}, got {encoding!r:.40}",
                                 param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
        raise OpenAIRequestError("'dimensions' must be an integer", param="dimensions")
    return EmbeddingRequest(model, texts, encoding, dimensions)


def check_dimensions(request: EmbeddingRequest, model_dimensions: int | None) -> None:
    """The model's vectors have one length; `dimensions` may only ask for it (no truncation here)."""
    if request.dimensions is not None and request.dimensions != model_dimensions:
        raise OpenAIRequestError(f"'dimensions' {request.dimensions} is not this model's: its embeddings have "
                                 f"{model_dimensions} dimensions", param="dimensions")


def base64_floats(vector: Sequence[float]) -> str:
    """The vector as little-endian float32 bytes, base64-encoded (what the openai client decodes)."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def embedding_response(request: EmbeddingRequest, vectors: list[list[float]], prompt_tokens: int) -> dict:
    """The answer: one `data` entry per text in input order; `prompt_tokens` counts every token the model
    saw ([CLS] and [SEP] included, as KServe's runtime counts the attention mask)."""
    encode = base64_floats if request.encoding_format == "base64" else list
    return {
        "id": str(uuid.uuid4()),
        "model": request.model,
        "created": int(time.time()),
        "object": "list",
        "data": [{"index": index, "object": "embedding", "embedding": encode(vector)}
                 for index, vector in enumerate(vectors)],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_response(model_name: str, created: int) -> dict:
    """`GET /openai/v1/models`: the one served model."""
    return {"object": "list", "data": [model_card(model_name, created)]}


def model_card(model_name: str, created: int) -> dict:
    return {"id": model_name, "object": "model", "created": created, "owned_by": ""}


def error_body(message: str, status_code: int, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error shape. `type`: invalid_request_error for 4xx, server_error for 5xx."""
    kind = "invalid_request_error" if status_code < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
