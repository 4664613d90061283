"""Pure rules of a text_embedding endpoint: unit norm, distinct vectors, and the OpenAI embeddings API's shapes.

Everything works on plain JSON values (no HTTP, no pytest); a broken rule raises `semantics.Violation`.
Sources: KServe's huggingfaceserver `encoder_model.py` (`_process_text_embedding`: mean pooling then
`F.normalize(p=2)`; `create_embedding`: the OpenAI route) and the OpenAI API reference ("Embeddings":
the embedding object, `encoding_format`, `usage`; "Errors": `{"error": {"message", "type", "param", "code"}}`).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

from conformance.semantics import Violation

# |norm - 1| allowed. fp32 normalisation leaves ~1e-6; a server answering in half precision (bf16: 8
# significant bits) rounds each component by at most 2^-9 relative, which bounds the norm's relative error by
# 2^-9 ~ 1.95e-3. 2e-3 admits that and nothing un-normalised: MiniLM's mean-pooled vectors have norms of 3-8.
UNIT_NORM_TOLERANCE = 2e-3
# Two different texts must differ by more than this in some component (the batching tolerance is 1e-4).
DISTINCT_TOLERANCE = 1e-3
# base64 float32 vs the float answer: float32 rounding of a component of magnitude <= 1 is <= 6e-8.
BASE64_TOLERANCE = 1e-6


def l2_norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


def check_unit_norms(rows: list[list[float]], tolerance: float = UNIT_NORM_TOLERANCE) -> None:
    for i, row in enumerate(rows):
        norm = l2_norm(row)
        if abs(norm - 1.0) > tolerance:
            raise Violation(f"text {i}: the embedding's L2 norm is {norm:.6f}, not 1 (tolerance {tolerance}): "
                            "KServe L2-normalises every embedding (F.normalize(p=2))")


def check_distinct(rows: list[list[float]], texts: list[str], tolerance: float = DISTINCT_TOLERANCE) -> None:
    """Different texts must not get the same vector (within `tolerance` in every component)."""
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if len(rows[i]) == len(rows[j]) and texts[i] != texts[j] \
                    and max(abs(a - b) for a, b in zip(rows[i], rows[j])) <= tolerance:
                raise Violation(f"texts {i} ({texts[i]!r}) and {j} ({texts[j]!r}) get the same embedding "
                                f"(every component within {tolerance})")


def decode_base64_floats(text: Any, where: str) -> list[float]:
    """A base64 embedding: little-endian float32 values (what KServe packs with struct '<f', and the OpenAI
    client decodes with numpy's little-endian float32)."""
    if not isinstance(text, str):
        raise Violation(f"{where}: with encoding_format base64 the embedding must be a string, got {text!r:.80}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Violation(f"{where}: not base64 ({exc})") from None
    if not raw or len(raw) % 4:
        raise Violation(f"{where}: {len(raw)} bytes decoded, not a non-empty whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_usage(body: dict) -> dict:
    """`usage`: prompt_tokens and total_tokens, integers > 0, total_tokens >= prompt_tokens."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        raise Violation(f"response has no 'usage' object: {str(body)[:200]}")
    for key in ("prompt_tokens", "total_tokens"):
        if not _positive_int(usage.get(key)):
            raise Violation(f"usage.{key} must be an integer > 0, got {usage.get(key)!r}")
    if usage["total_tokens"] < usage["prompt_tokens"]:
        raise Violation(f"usage.total_tokens {usage['total_tokens']} < prompt_tokens {usage['prompt_tokens']}")
    return usage


def embedding_items(body: Any, count: int) -> list[dict]:
    """`data`: one embedding object per input, in input order: object "embedding", index == position."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise Violation(f"response has no 'data' list: {str(body)[:200]}")
    data = body["data"]
    if len(data) != count:
        raise Violation(f"{count} inputs sent, {len(data)} embedding objects in 'data'")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise Violation(f"data[{i}] is not an object: {item!r:.80}")
        if item.get("object") != "embedding":
            raise Violation(f"data[{i}].object is {item.get('object')!r}, not 'embedding'")
        if item.get("index") != i:
            raise Violation(f"data[{i}].index is {item.get('index')!r}: the embedding objects must come in "
                            f"input order, index {i} at position {i}")
        if "embedding" not in item:
            raise Violation(f"data[{i}] has no 'embedding'")
    return data


def float_embeddings(body: Any, count: int) -> list[list[float]]:
    """The float embeddings of an encoding_format=float answer, schema-checked (one dimension for all)."""
    vectors = []
    for i, item in enumerate(embedding_items(body, count)):
        vector = item["embedding"]
        if not isinstance(vector, list) or not vector or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vector):
            raise Violation(f"data[{i}].embedding must be a non-empty list of finite floats, got {str(vector)[:80]}")
        vectors.append([float(v) for v in vector])
    if len({len(v) for v in vectors}) > 1:
        raise Violation(f"embeddings of one request have different dimensions: {sorted({len(v) for v in vectors})}")
    return vectors


def openai_error(body: Any) -> str | None:
    """What is wrong with an OpenAI error body `{"error": {"message": str, "type": str, ...}}` (None: nothing)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"the body is not {{\"error\": {{\"message\", \"type\", ...}}}}: {str(body)[:200]}"
    if not isinstance(error.get("message"), str) or not error["message"]:
        return f"error.message must be a non-empty string: {str(error)[:200]}"
    if not isinstance(error.get("type"), str):
        return f"error.type must be a string: {str(error)[:200]}"
    return None
