"""Pure functions that know what a KServe-style encoder endpoint must answer.

Everything here works on plain JSON values (no HTTP, no pytest) so it is unit-testable:

- `validate_v2_tensor`: the Open Inference Protocol's tensor rules (datatype names, element count =
  product(shape), values that match the datatype);
- `v1_rows` / `v2_rows`: turn a V1 `predictions` list or a V2 `output-0` tensor into the *canonical rows*
  below, checking the nesting and shapes of KServe's Hugging Face runtime on the way (reference doc §1);
- `compare_rows`: equality with a tolerance for probabilities / logits.

Canonical rows, one per input text:
  token_classification  default: [id, ...] (S ids)          probabilities/logits: [{label: float}, ...] (S dicts)
  sequence_classification default: id                       probabilities/logits: {label: float}
  fill_mask             default: "decoded token(s)"          probabilities/logits: [{token_id: float, ...}, ...] (per mask)
  text_embedding        default (its one mode): [float, ...] (D floats: the mean-pooled, L2-normalised vector)
"""

from __future__ import annotations

import ast
import math
from typing import Any

# The one list of tasks and modes (workbench.tasks); the tasks an endpoint can be checked in (--task) are those.
from workbench.tasks import MODES, TASKS, TEXT_EMBEDDING, task_modes  # noqa: F401

SUITE_TASKS: tuple[str, ...] = TASKS

INTEGER_RANGES = {
    "INT8": (-(2**7), 2**7 - 1), "INT16": (-(2**15), 2**15 - 1), "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1), "UINT8": (0, 2**8 - 1), "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1), "UINT64": (0, 2**64 - 1),
}
FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")
DATATYPES = ("BOOL", *INTEGER_RANGES, *FLOAT_TYPES, "BYTES")

PROBABILITY_SUM_TOLERANCE = 1e-3  # float slack on top of the rounding interval (probability_sum_bounds)
PROBABILITY_TOLERANCE = 2e-3  # between two servers / compositions, after 4-place rounding
LOGIT_TOLERANCE = 1e-3
# Embedding components between two answers (alone vs batched, V1 vs V2, server vs reference): unit vectors
# whose components are ~1/sqrt(D) (0.05 for D=384); fp32 padding/batching noise is ~1e-6, so 1e-4 is 100x that
# and still 0.2% of a typical component.
EMBEDDING_TOLERANCE = 1e-4


class Violation(AssertionError):
    """A response broke a rule; the message says which rule and what was seen."""


def flatten(data: Any) -> list:
    """Row-major flattening of nested lists (OIP allows `data` nested or flat)."""
    if isinstance(data, list):
        out: list = []
        for item in data:
            out.extend(flatten(item))
        return out
    return [data]


def product(shape: list[int]) -> int:
    result = 1
    for dim in shape:
        result *= dim
    return result


def value_matches_datatype(value: Any, datatype: str) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype in INTEGER_RANGES:
        low, high = INTEGER_RANGES[datatype]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if datatype in FLOAT_TYPES:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    return False


def validate_tensor_header(tensor: Any, where: str) -> None:
    """name: str, shape: list of non-negative ints, datatype: an OIP datatype, data: present."""
    if not isinstance(tensor, dict):
        raise Violation(f"{where}: a tensor must be a JSON object, got {type(tensor).__name__}")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise Violation(f"{where}: tensor has no {key!r} field (keys: {sorted(tensor)})")
    if not isinstance(tensor["name"], str):
        raise Violation(f"{where}: 'name' must be a string, got {tensor['name']!r}")
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise Violation(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if tensor["datatype"] not in DATATYPES:
        raise Violation(f"{where}: datatype {tensor['datatype']!r} is not an OIP datatype {DATATYPES}")


def validate_element_count(tensor: dict, where: str) -> None:
    count = len(flatten(tensor["data"]))
    if count != product(tensor["shape"]):
        raise Violation(f"{where}: data has {count} elements but shape {tensor['shape']} "
                        f"needs {product(tensor['shape'])}")


def validate_datatype_values(tensor: dict, where: str) -> None:
    datatype = tensor["datatype"]
    for index, value in enumerate(flatten(tensor["data"])):
        if not value_matches_datatype(value, datatype):
            raise Violation(f"{where}: element {index} = {value!r} ({type(value).__name__}) "
                            f"is not a valid {datatype} value")


def validate_v2_tensor(tensor: Any, where: str = "output") -> None:
    validate_tensor_header(tensor, where)
    validate_element_count(tensor, where)
    validate_datatype_values(tensor, where)


def reshape(flat: list, shape: list[int]) -> Any:
    """Row-major reshape of a flat list into nested lists."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = product(shape[1:])
    return [reshape(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def parse_score_dict(value: Any, where: str) -> dict[int, float]:
    """A `{label_id: number}` dict from V1 JSON (string keys) or a V2 BYTES `str(dict)` repr."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise Violation(f"{where}: {value[:80]!r} is not a Python dict literal ({exc})") from None
    if not isinstance(value, dict) or not value:
        raise Violation(f"{where}: expected a non-empty {{label_id: score}} dict, got {value!r:.80}")
    parsed: dict[int, float] = {}
    for key, score in value.items():
        try:
            label = int(key)
            number = float(score)
        except (TypeError, ValueError):
            raise Violation(f"{where}: entry {key!r}: {score!r} is not label_id: number") from None
        if not math.isfinite(number):
            raise Violation(f"{where}: entry {key!r} has a non-finite score {score!r}")
        parsed[label] = number
    return parsed


def merge_vocab_dicts(entries: Any, where: str) -> dict[int, float]:
    """Fill-mask scores: a V-long list of one-entry dicts `{token_id: value}` merged into one dict."""
    if isinstance(entries, dict):
        return parse_score_dict(entries, where)
    if not isinstance(entries, list) or not entries:
        raise Violation(f"{where}: expected a list of {{token_id: score}} dicts, got {entries!r:.80}")
    merged: dict[int, float] = {}
    for index, entry in enumerate(entries):
        merged.update(parse_score_dict(entry, f"{where}[{index}]"))
    return merged


ROUNDING_STEP = 1e-4  # servers round probabilities to 4 places: each value is within 5e-5 of the true one


def probability_sum_bounds(values: list[float]) -> tuple[float, float]:
    """(low, high) for the true sum of probabilities whose 4-place roundings are `values`.

    Each rounded value r came from a p in [max(r - 5e-5, 0), min(r + 5e-5, 1)], so the true sum lies in
    [sum of the lows, sum of the highs]; it is 1 only when 1 lies in that interval. For a few labels the
    interval is tight; for a vocabulary most values round to 0 and the interval is wide below (a flat
    distribution over 30k tokens rounds to all zeros), but stays tight above: a sum of 2 cannot pass.
    """
    half = ROUNDING_STEP / 2
    low = sum(max(v - half, 0.0) for v in values)
    high = sum(min(v + half, 1.0) for v in values)
    return low, high


def check_probabilities(scores: dict[int, float], where: str) -> None:
    if any(p < 0 or p > 1 for p in scores.values()):
        raise Violation(f"{where}: a probability lies outside [0, 1]: {str(scores)[:200]}")
    total = sum(scores.values())
    low, high = probability_sum_bounds(list(scores.values()))
    if not low - PROBABILITY_SUM_TOLERANCE <= 1.0 <= high + PROBABILITY_SUM_TOLERANCE:
        raise Violation(f"{where}: probabilities sum to {total:.6f}; rounded to 4 places from a distribution "
                        f"they could sum to [{low:.6f}, {high:.6f}], which excludes 1 "
                        f"(slack {PROBABILITY_SUM_TOLERANCE})")


def _row_count(rows: Any, batch: int, where: str) -> None:
    if not isinstance(rows, list):
        raise Violation(f"{where}: expected a list with one entry per text, got {type(rows).__name__}")
    if len(rows) != batch:
        raise Violation(f"{where}: {batch} texts sent, {len(rows)} answers received")


def _token_row_default(row: Any, where: str) -> list[int]:
    if not (isinstance(row, list) and len(row) == 1 and isinstance(row[0], list)):
        raise Violation(f"{where}: token classification ids must be nested 1xS ([[id, ...]]), got {row!r:.80}")
    ids = row[0]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise Violation(f"{where}: label ids must be integers, got {ids!r:.80}")
    return list(ids)


def _check_same_length(rows: list, where: str) -> None:
    lengths = {len(row) for row in rows}
    if len(lengths) > 1:
        raise Violation(f"{where}: rows of one request must all have the same length (token rows: S, padded; "
                        f"embeddings: D), got lengths {sorted(lengths)}")


def v1_rows(task: str, mode: str, predictions: Any, batch: int) -> list:
    """Canonical rows from a V1 `predictions` value, checking KServe's HF-runtime nesting."""
    _row_count(predictions, batch, "predictions")
    rows: list = []
    for i, row in enumerate(predictions):
        where = f"predictions[{i}]"
        if task == "token_classification":
            if mode == "default":
                rows.append(_token_row_default(row, where))
            else:
                if not isinstance(row, list) or not row:
                    raise Violation(f"{where}: expected S per-token score dicts, got {row!r:.80}")
                rows.append([parse_score_dict(item, f"{where}[{j}]") for j, item in enumerate(row)])
        elif task == "sequence_classification":
            if mode == "default":
                if not isinstance(row, int) or isinstance(row, bool):
                    raise Violation(f"{where}: expected one integer class id, got {row!r:.80}")
                rows.append(row)
            else:
                rows.append(parse_score_dict(row, where))
        elif task == "fill_mask":
            if mode == "default":
                if not isinstance(row, str):
                    raise Violation(f"{where}: expected the predicted token as a string, got {row!r:.80}")
                rows.append(row)
            else:
                if not isinstance(row, list) or not row:
                    raise Violation(f"{where}: expected one score list per mask, got {row!r:.80}")
                rows.append([merge_vocab_dicts(entries, f"{where}[{m}]") for m, entries in enumerate(row)])
        elif task == TEXT_EMBEDDING:
            rows.append(embedding_row(row, where))
        else:
            raise ValueError(f"unknown task {task!r}")
    if task in ("token_classification", TEXT_EMBEDDING):
        _check_same_length(rows, "predictions")
    return rows


def embedding_row(row: Any, where: str) -> list[float]:
    """One text's embedding: a non-empty flat list of finite numbers (D floats)."""
    if not isinstance(row, list) or not row:
        raise Violation(f"{where}: expected the text's embedding as a non-empty list of D floats, got {row!r:.80}")
    for j, value in enumerate(row):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Violation(f"{where}[{j}]: embedding components must be finite numbers, got {value!r:.80}")
    return [float(value) for value in row]


def expected_v2_layout(task: str, mode: str) -> tuple[str, str]:
    """(datatype, shape description) that KServe's HF runtime gives `output-0` for a task/mode."""
    if task == TEXT_EMBEDDING:
        return "FP32", "[B,D]"
    if mode == "default":
        return {"token_classification": ("INT64", "[B,1,S]"), "sequence_classification": ("INT64", "[B]"),
                "fill_mask": ("BYTES", "[B]")}[task]
    return {"token_classification": ("BYTES", "[B,S]"), "sequence_classification": ("BYTES", "[B]"),
            "fill_mask": ("BYTES", "[B,M,V]")}[task]


def output_list(body: Any) -> list:
    """The V2 response's `outputs`, which must be a non-empty list (a response answers at least one tensor)."""
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list) or not body["outputs"]:
        raise Violation(f"response has no non-empty 'outputs' list: {str(body)[:200]}")
    return body["outputs"]


def find_output(body: Any, name: str = "output-0") -> dict:
    output_list(body)
    for tensor in body["outputs"]:
        if isinstance(tensor, dict) and tensor.get("name") == name:
            return tensor
    names = [t.get("name") for t in body["outputs"] if isinstance(t, dict)]
    raise Violation(f"no output named {name!r} (outputs: {names})")


def v2_rows(task: str, mode: str, tensor: dict, batch: int) -> list:
    """Canonical rows from a V2 `output-0` tensor, checking datatype and shape per the runtime's table."""
    validate_v2_tensor(tensor, "output-0")
    if task == TEXT_EMBEDDING:
        return v2_embedding_rows(tensor, batch)
    datatype, layout = expected_v2_layout(task, mode)
    shape = tensor["shape"]
    if tensor["datatype"] != datatype:
        raise Violation(f"output-0: datatype {tensor['datatype']} but {task}/{mode} gives {datatype} {layout}")
    rank = layout.count(",") + 1
    if len(shape) != rank or shape[0] != batch:
        raise Violation(f"output-0: shape {shape} but {task}/{mode} for {batch} texts gives {layout} with B={batch}")
    if task == "token_classification" and mode == "default" and shape[1] != 1:
        raise Violation(f"output-0: shape {shape}: the middle dimension must be 1 ([B,1,S])")
    nested = reshape(flatten(tensor["data"]), shape)
    rows: list = []
    for i, row in enumerate(nested):
        where = f"output-0[{i}]"
        if task == "token_classification":
            if mode == "default":
                rows.append(list(row[0]))
            else:
                rows.append([parse_score_dict(item, f"{where}[{j}]") for j, item in enumerate(row)])
        elif task == "sequence_classification":
            rows.append(row if mode == "default" else parse_score_dict(row, where))
        else:
            if mode == "default":
                rows.append(row)
            else:
                rows.append([merge_vocab_dicts(list(entries), f"{where}[{m}]") for m, entries in enumerate(row)])
    return rows


def v2_embedding_rows(tensor: dict, batch: int) -> list[list[float]]:
    """Embedding rows from a validated `output-0`: a floating-point datatype (OIP lets the server choose its
    precision; test_embeddings checks for FP32), shape [B, D] with D > 0."""
    shape = tensor["shape"]
    if tensor["datatype"] not in FLOAT_TYPES:
        raise Violation(f"output-0: datatype {tensor['datatype']} but embeddings are floats ({'/'.join(FLOAT_TYPES)}) [B,D]")
    if len(shape) != 2 or shape[0] != batch or shape[1] < 1:
        raise Violation(f"output-0: shape {shape} but the embeddings of {batch} texts are [B,D] with B={batch}, D > 0")
    return [embedding_row(row, f"output-0[{i}]") for i, row in enumerate(reshape(flatten(tensor["data"]), shape))]


def check_row_semantics(task: str, mode: str, rows: list, *, num_labels: int | None = None,
                        token_lengths: list[int] | None = None, vocab_size: int | None = None) -> None:
    """Task semantics per mode: ids within the label range, probabilities summing to 1, S = tokenized length."""
    for i, row in enumerate(rows):
        where = f"text {i}"
        if task == "token_classification":
            if token_lengths is not None and len(row) != max(token_lengths):
                raise Violation(f"{where}: {len(row)} token positions, but the longest text of the request "
                                f"tokenizes to {max(token_lengths)} tokens (special tokens and padding included)")
            if mode == "default":
                for j, label in enumerate(row):
                    if label < 0 or (num_labels is not None and label >= num_labels):
                        raise Violation(f"{where}, token {j}: label id {label} outside [0, {num_labels})")
            else:
                for j, scores in enumerate(row):
                    _check_score_keys(scores, num_labels, f"{where}, token {j}")
                    if mode == "probabilities":
                        check_probabilities(scores, f"{where}, token {j}")
        elif task == "sequence_classification":
            if mode == "default":
                if row < 0 or (num_labels is not None and row >= num_labels):
                    raise Violation(f"{where}: class id {row} outside [0, {num_labels})")
            else:
                _check_score_keys(row, num_labels, where)
                if mode == "probabilities":
                    check_probabilities(row, where)
        else:
            if mode == "default":
                if not row.strip():
                    raise Violation(f"{where}: the predicted token is an empty string")
            else:
                for m, scores in enumerate(row):
                    if vocab_size is not None and len(scores) != vocab_size:
                        raise Violation(f"{where}, mask {m}: {len(scores)} scores, vocabulary has {vocab_size}")
                    if mode == "probabilities":
                        check_probabilities(scores, f"{where}, mask {m}")


def _check_score_keys(scores: dict[int, float], num_labels: int | None, where: str) -> None:
    if num_labels is not None and sorted(scores) != list(range(num_labels)):
        raise Violation(f"{where}: keys {sorted(scores)} are not the label ids 0..{num_labels - 1}")


def _close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= tolerance + tolerance * abs(b)


def compare_rows(task: str, mode: str, got: list, expected: list, *, prefix_ok: bool = False) -> list[str]:
    """Differences between two canonical row lists ([] when equal within tolerance).

    prefix_ok: token rows may be longer in `got` (padding of a batched request); compare the first
    len(expected) positions.
    """
    tolerance = PROBABILITY_TOLERANCE if mode == "probabilities" else LOGIT_TOLERANCE
    problems: list[str] = []
    if len(got) != len(expected):
        return [f"{len(got)} rows, expected {len(expected)}"]
    if task == TEXT_EMBEDDING:
        return compare_embeddings(got, expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        if task == "token_classification" and prefix_ok:
            a = a[:len(b)]
        if mode == "default":
            if a != b:
                problems.append(f"text {i}: got {a!r:.120}, expected {b!r:.120}")
            continue
        pairs = list(zip(a, b)) if isinstance(a, list) else [(a, b)]
        if isinstance(a, list) and len(a) != len(b):
            problems.append(f"text {i}: {len(a)} positions, expected {len(b)}")
            continue
        for j, (sa, sb) in enumerate(pairs):
            if set(sa) != set(sb):
                problems.append(f"text {i}[{j}]: keys differ")
                break
            bad = [k for k in sb if not _close(sa[k], sb[k], tolerance)]
            if bad:
                k = bad[0]
                problems.append(f"text {i}[{j}] label {k}: got {sa[k]}, expected {sb[k]} (tolerance {tolerance})")
                break
    return problems


def compare_embeddings(got: list[list[float]], expected: list[list[float]],
                       tolerance: float = EMBEDDING_TOLERANCE) -> list[str]:
    """Differences between two lists of embeddings: per text, the dimension and every component within
    `tolerance` (absolute)."""
    problems: list[str] = []
    for i, (a, b) in enumerate(zip(got, expected)):
        if len(a) != len(b):
            problems.append(f"text {i}: {len(a)} dimensions, expected {len(b)}")
            continue
        worst = max(range(len(b)), key=lambda j: abs(a[j] - b[j]))
        if abs(a[worst] - b[worst]) > tolerance:
            problems.append(f"text {i}[{worst}]: got {a[worst]}, expected {b[worst]} (max difference "
                            f"{abs(a[worst] - b[worst]):.3g} > tolerance {tolerance})")
    return problems
