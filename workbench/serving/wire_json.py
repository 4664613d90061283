"""JSON on the wire, for every REST route: one serialiser (orjson) and one body parser."""

from __future__ import annotations

from typing import Any

import orjson

from workbench.serving.errors import BadRequest


def dump_json(payload: Any) -> bytes:
    """Integer dict keys become strings, as the json module writes KServe's answers."""
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def parse_json(raw: bytes) -> Any:
    """Parse a body as JSON whatever its content type (plain `curl -d` sends form encoding)."""
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON in the request body: {exc}") from None
