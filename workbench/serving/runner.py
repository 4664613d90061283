"""The model and its tokenizer on their device: load, tokenize, pad a batch, run a forward pass.

Loading mirrors KServe's Hugging Face runtime (AutoTokenizer with `do_lower_case`, the task's
AutoModel class, a fallback [PAD] token), so that the same model and flags give the same answers.
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from workbench.serving.args import ServeConfig
from workbench.serving.batching import WorkItem, balanced_row_tokens, pack_rows, padded_length
from workbench.serving.errors import BadRequest
from workbench.serving.hardware import DtypeChoice, choose_dtype, detect_capability, detect_cpu_flags
from workbench.serving.dataplane import output_specs
from workbench.tasks import FILL_MASK, LOGIT_TASKS, TEXT_EMBEDDING, Mode, infer_task, model_class

log = logging.getLogger("workbench.serve")

DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16}


@dataclass
class Encoded:
    """One tokenized text."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: list[tuple[int, int]] | None = None
    mask_positions: list[int] | None = None  # fill mask only
    special_tokens_mask: list[int] | None = None  # entity requests only

    def __len__(self) -> int:
        return len(self.input_ids)


# Packed rows hold at most this many tokens (a longer text gets a row of its own); each batch is packed
# into as few rows, filled evenly (batching.balanced_row_tokens). Attention in a packed row costs
# row_length^2. MiniLM NER, 640 CoNLL validation sentences in arrival-order batches, AMD EPYC (Zen 4), quiet:
# rows filled up to 256 tokens, batches of 16: 247 seq/s (2 threads), 157 (1 thread), 78% of the computed
# positions real; filled evenly: 370 and 208, 98% real; batches of 32: 339 -> 389 (2 threads).
PACK_ROW_TOKENS = 256
# Per-token outputs, and embeddings pooled over each text's own positions: any layout of tokens works.
# (Sequence classification pools the [CLS] at position 0 of a row, so it is never packed.)
PACKED_TASKS = ("token_classification", "fill_mask", TEXT_EMBEDDING)
# Runners that pad each text to its batch's longest have each batch split into length groups
# (batching.split_by_length) at this fixed cost per forward pass, in token equivalents. Measured on the
# MiniLM NER model, 640 CoNLL validation sentences in arrival-order batches of 32, 1 thread, AMD EPYC (Zen 4),
# quiet machine: no split 92.7 seq/s; overhead 4: 168.4, 8: 172.7, 16: 175.1, 32: 174.8, 64: 171.4
# (`python benchmarks/serving_ceiling.py --model_dir DIR --count 640 --threads 1 --split_overheads 0,4,8,16,32,64`).
SPLIT_OVERHEAD_TOKENS = 16


@dataclass
class PreparedBatch:
    items: list[WorkItem]
    tensors: dict[str, torch.Tensor]
    length: int
    places: list[tuple[int, int]] | None = None  # packed: each item's (row, start); padded: None
    real_tokens: int = 0  # the texts' own tokens
    computed_tokens: int = 0  # what the model computes: rows x row length

    def span(self, index: int) -> tuple[int, int]:
        """(row, first position) of item `index` in the tensors."""
        return self.places[index] if self.places is not None else (index, 0)


def packed_tensors(encoded: Sequence[Encoded], segments: Sequence[int], places: Sequence[tuple[int, int]],
                   length: int, pad_id: int, with_types: bool) -> dict[str, torch.Tensor]:
    """Several texts in one row each way round: `input_ids`, `position_ids` restarting at 0 for each text,
    `token_type_ids` in the same layout, and a 4D boolean mask [rows, 1, length, length] in which a
    position sees only its own text's real tokens (block diagonal). Each text occupies `segments[i]`
    positions (its tokens, then padding up to its request's length, as alone); positions after the
    last text of a row see only themselves, so no query row is empty."""
    rows = 1 + max(row for row, _ in places)
    input_ids = torch.full((rows, length), pad_id, dtype=torch.long)
    positions = torch.zeros((rows, length), dtype=torch.long)
    types = torch.zeros((rows, length), dtype=torch.long)
    owner = torch.full((rows, length), -1, dtype=torch.long)
    visible = torch.ones((rows, length), dtype=torch.bool)  # as a key
    for index, (enc, size, (row, start)) in enumerate(zip(encoded, segments, places)):
        real = len(enc)
        input_ids[row, start:start + real] = torch.tensor(enc.input_ids, dtype=torch.long)
        positions[row, start:start + size] = torch.arange(size)
        if with_types and enc.token_type_ids is not None:
            types[row, start:start + real] = torch.tensor(enc.token_type_ids, dtype=torch.long)
        owner[row, start:start + size] = index
        if real > 0:  # padding inside a text's span is no key (as the 2D mask alone)
            visible[row, start + real:start + size] = False
    mask = (owner[:, :, None] == owner[:, None, :]) & visible[:, None, :]
    tensors = {"input_ids": input_ids, "position_ids": positions, "attention_mask": mask[:, None]}
    if with_types:
        tensors["token_type_ids"] = types
    return tensors


def mean_pooled(hidden: torch.Tensor, spans: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """[texts, D] embeddings: for each (row, start, length) span, the mean of `hidden[row, start:start+length]`
    (the text's real tokens: what KServe's runtime averages with the attention mask) in float32, then
    L2-normalised (torch.nn.functional.normalize, as the runtime)."""
    pooled = torch.stack([hidden[row, start:start + length].float().mean(dim=0) for row, start, length in spans])
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("workbench serve: --device cuda was asked for, but CUDA is not available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def dtype_choice(requested: str, device: torch.device, flags=None, capability: str | None = None) -> DtypeChoice:
    """The dtype to run and why (rules in workbench/serving/hardware.py); this CPU's flags unless given."""
    if device.type == "cpu":
        flags = detect_cpu_flags() if flags is None else flags
        capability = detect_capability() if capability is None else capability
    return choose_dtype(requested, device.type, flags or (), capability or "")


def pick_dtype(requested: str, device: torch.device, flags=None, capability: str | None = None) -> torch.dtype:
    return DTYPES[dtype_choice(requested, device, flags, capability).dtype]


def tokenizer_is_cased(tokenizer) -> bool:
    """True when the tokenizer keeps capitals (then lowercasing changes what the model sees)."""
    return tokenizer.tokenize("Paris") != tokenizer.tokenize("paris")


class EncoderRunner:
    def __init__(self, config: ServeConfig):
        self.config = config
        self.task: str | None = config.task
        self.tokenizer = None
        self.model = None
        self.device = pick_device(config.device)
        choice = dtype_choice(config.dtype, self.device)
        if choice.warning:
            log.warning("%s", choice.warning)
        log.info("dtype %s: %s", choice.dtype, choice.reason)
        self.dtype = DTYPES[choice.dtype]
        self.max_length: int | None = None
        self.packing = False  # set by load(): one row holds several texts (see prepare)
        self.max_positions: int | None = None
        self.hidden_size: int | None = None  # text_embedding: D
        self.num_labels: int | None = None
        self.id2label: dict[int, str] = {}
        # A fast tokenizer keeps its truncation settings (stride included) on the shared Rust object, so
        # entity windows use a copy of their own, one call at a time, and never race the default path.
        self._window_tokenizer = None
        self._window_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        from transformers import AutoConfig, AutoTokenizer

        source = self.config.model_source
        model_config = AutoConfig.from_pretrained(source)
        try:
            inferred = infer_task(getattr(model_config, "architectures", None))
        except ValueError as exc:
            if self.task is None:
                raise SystemExit(f"workbench serve: {exc}") from None
            inferred = None
        if self.task is None:
            self.task = inferred
        elif inferred is not None and inferred != self.task:
            log.warning("the model's architecture says task %s but --task %s was given", inferred, self.task)

        plain = AutoTokenizer.from_pretrained(source)
        lower = self.config.lower_case
        cased = tokenizer_is_cased(plain)
        if lower and cased:
            log.warning("the tokenizer of %s is cased but inputs are lowercased (KServe's default); pass "
                        "--disable_lower_case to keep capitals, which cased NER models usually need", source)
        if not lower and not cased:
            log.warning("--disable_lower_case on an uncased tokenizer: capitalised words may become [UNK]")
        self.tokenizer = AutoTokenizer.from_pretrained(source, do_lower_case=lower)
        if not self.tokenizer.is_fast and self.config.return_offsets_mapping:
            raise SystemExit("workbench serve: --return_offsets_mapping needs a fast tokenizer")

        if self.task == TEXT_EMBEDDING and self.config.mode is not Mode.DEFAULT:
            log.warning("--task text_embedding answers normalised embeddings; --%s is ignored (as KServe's "
                        "runtime ignores it)", {Mode.PROBABILITIES: "return_probabilities",
                                                Mode.LOGITS: "return_raw_logits"}[self.config.mode])
        auto_class = model_class(self.task)
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        try:
            model = auto_class.from_pretrained(source, attn_implementation="sdpa", **kwargs)
        except (ValueError, ImportError):  # architectures without SDPA support
            model = auto_class.from_pretrained(source, **kwargs)
        if self.tokenizer.pad_token is None:
            log.warning("the tokenizer has no padding token; adding [PAD]")
            self.tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            model.resize_token_embeddings(len(self.tokenizer))
        self.tokenizer.padding_side = "right"
        self.model = model.to(self.device).eval()

        self.max_positions = getattr(model_config, "max_position_embeddings", None)
        self.max_length = self.config.max_length or self.max_positions or self.tokenizer.model_max_length
        if self.max_positions and self.max_length > self.max_positions:
            raise SystemExit(f"workbench serve: --max_length {self.max_length} exceeds the model's "
                             f"max_position_embeddings {self.max_positions}")
        has_labels = self.task in LOGIT_TASKS and self.task != FILL_MASK
        self.num_labels = getattr(model_config, "num_labels", None) if has_labels else None
        self.id2label = {int(k): v for k, v in (getattr(model_config, "id2label", None) or {}).items()} \
            if has_labels else {}
        self.hidden_size = getattr(model_config, "hidden_size", None)
        self.input_names = [n for n in ("input_ids", "token_type_ids", "attention_mask")
                            if n in self.tokenizer.model_input_names]
        self.packing = self.config.packing and self.task in PACKED_TASKS and \
            "position_ids" in inspect.signature(model.forward).parameters
        log.info("loaded %s: task %s, %s on %s, max_length %s, %s batches", source, self.task, self.dtype,
                 self.device, self.max_length, "packed" if self.packing else "padded")

    @property
    def split_overhead_tokens(self) -> int:
        """For the batch queue: 0 when packing (one pass per batch), else split batches by length."""
        return 0 if self.packing else SPLIT_OVERHEAD_TOKENS

    def warm_up(self) -> None:
        # The mask first: with a small --max_length a mask at the end would be cut off (fill mask needs one).
        encoded = self.tokenize([(self.tokenizer.mask_token or "") + " warm up"])
        item = WorkItem(encoded[0], len(encoded[0]))
        self.forward(self.prepare([item]))

    # -- tokenization (request threads) -------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[Encoded]:
        want_offsets = self.config.return_offsets_mapping and self.task == "token_classification"
        batch = self.tokenizer(
            list(texts),
            add_special_tokens=self.config.add_special_tokens,
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_offsets_mapping=want_offsets,
        )
        types = batch.get("token_type_ids") if "token_type_ids" in self.input_names else None
        encoded = []
        for i, ids in enumerate(batch["input_ids"]):
            offsets = [tuple(o) for o in batch["offset_mapping"][i]] if want_offsets else None
            encoded.append(Encoded(ids, types[i] if types is not None else None, offsets))
        if self.task == "fill_mask":
            mask_id = self.tokenizer.mask_token_id
            for index, enc in enumerate(encoded):
                enc.mask_positions = [p for p, t in enumerate(enc.input_ids) if t == mask_id]
                if not enc.mask_positions:
                    raise BadRequest(f"text {index} has no {self.tokenizer.mask_token} token "
                                     f"(within the first {self.max_length} tokens); fill mask needs one")
        return encoded

    def tokenize_windows(self, texts: Sequence[str], stride: int | None) -> tuple[list[Encoded], list[int], list[bool]]:
        """Entity requests: each text as windows of at most max_length tokens, with offsets and the
        special tokens mask. With `stride`, every window (overlapping by `stride` tokens, as the
        token-classification pipeline splits long texts); without, only the first.
        Returns (windows, the text index of each window, whether each text was cut off)."""
        fast = self.tokenizer.is_fast
        with self._window_lock:
            if self._window_tokenizer is None:
                self._window_tokenizer = copy.deepcopy(self.tokenizer)
            batch = self._window_tokenizer(
                list(texts),
                add_special_tokens=self.config.add_special_tokens,
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_offsets_mapping=fast,
                return_special_tokens_mask=True,
                return_overflowing_tokens=fast,
                stride=stride or 0,
            )
        if fast:
            sample_map = list(batch["overflow_to_sample_mapping"])
        else:  # slow tokenizers: one window per text; cut off when the full text is longer
            sample_map = list(range(len(texts)))
        types = batch.get("token_type_ids") if "token_type_ids" in self.input_names else None
        windows: list[Encoded] = []
        owners: list[int] = []
        counts = [0] * len(texts)
        for row, ids in enumerate(batch["input_ids"]):
            owner = sample_map[row]
            counts[owner] += 1
            if stride is None and counts[owner] > 1:
                continue
            windows.append(Encoded(ids, types[row] if types is not None else None,
                                   [tuple(o) for o in batch["offset_mapping"][row]] if fast else None,
                                   special_tokens_mask=batch["special_tokens_mask"][row]))
            owners.append(owner)
        if fast:
            truncated = [stride is None and count > 1 for count in counts]
        else:
            full = self.tokenizer(list(texts), add_special_tokens=self.config.add_special_tokens,
                                  return_attention_mask=False)["input_ids"]
            truncated = [len(ids) > self.max_length for ids in full]
        return windows, owners, truncated

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids)

    # -- batches (on a model worker's thread: prepare, then forward) -------------------------------------
    def prepare(self, items: list[WorkItem]) -> PreparedBatch:
        """Tensors for one forward pass. Packed (token tasks): the texts laid end to end in rows of at most
        PACK_ROW_TOKENS, each seeing only itself, so padding costs nothing. Padded: one row per text,
        padded to the longest."""
        batch = self._prepare_packed(items) if self.packing else self._prepare_padded(items)
        if self.device.type == "cuda":
            batch.tensors = {k: v.pin_memory() for k, v in batch.tensors.items()}
        return batch

    def _prepare_packed(self, items: list[WorkItem]) -> PreparedBatch:
        segments = [item.request_length for item in items]
        places = pack_rows(segments, balanced_row_tokens(segments, PACK_ROW_TOKENS))
        filled = max(start + size for (_, start), size in zip(places, segments))
        length = padded_length(filled, 8)
        tensors = packed_tensors([item.payload for item in items], segments, places, length,
                                 self.tokenizer.pad_token_id, "token_type_ids" in self.input_names)
        rows = tensors["input_ids"].shape[0]
        return PreparedBatch(items, tensors, length, places, sum(len(item.payload) for item in items),
                             rows * length)

    def _prepare_padded(self, items: list[WorkItem]) -> PreparedBatch:
        length = padded_length(max(item.request_length for item in items), 8, self.max_positions)
        n = len(items)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((n, length), pad_id, dtype=torch.long)
        attention = torch.zeros((n, length), dtype=torch.long)
        types = torch.zeros((n, length), dtype=torch.long) if "token_type_ids" in self.input_names else None
        for row, item in enumerate(items):
            enc: Encoded = item.payload
            size = len(enc)
            input_ids[row, :size] = torch.tensor(enc.input_ids, dtype=torch.long)
            attention[row, :size] = 1
            if types is not None and enc.token_type_ids is not None:
                types[row, :size] = torch.tensor(enc.token_type_ids, dtype=torch.long)
        tensors = {"input_ids": input_ids, "attention_mask": attention}
        if types is not None:
            tensors["token_type_ids"] = types
        return PreparedBatch(items, tensors, length, None, sum(len(item.payload) for item in items), n * length)

    @torch.inference_mode()
    def forward(self, batch: PreparedBatch) -> list[torch.Tensor]:
        tensors = {k: v.to(self.device, non_blocking=True) for k, v in batch.tensors.items()}
        if self.task == TEXT_EMBEDDING:
            hidden = self.model(**tensors).last_hidden_state
            spans = [(*batch.span(index), len(item.payload)) for index, item in enumerate(batch.items)]
            return list(mean_pooled(hidden, spans).cpu())  # rows of a fresh [texts, D] tensor
        logits = self.model(**tensors).logits
        outputs: list[torch.Tensor] = []
        if self.task == "token_classification":
            for index, item in enumerate(batch.items):
                row, start = batch.span(index)
                outputs.append(logits[row, start:start + item.request_length])
        elif self.task == "sequence_classification":
            outputs = list(logits)
        else:
            for index, item in enumerate(batch.items):
                row, start = batch.span(index)
                outputs.append(logits[row, [start + p for p in item.payload.mask_positions]])
        if self.device.type == "cuda":
            return [out.cpu() for out in outputs]
        return [out.clone() for out in outputs]  # not views that would keep the whole batch alive

    # -- metadata ---------------------------------------------------------------------------------
    def output_metadata(self) -> list[dict]:
        """What the model answers (dataplane.output_specs, the one declaration), as V2 metadata."""
        vocab = self.model.config.vocab_size if self.task == FILL_MASK and self.model is not None else None
        offsets = self.config.return_offsets_mapping and self.task == "token_classification"
        specs = output_specs(self.task, self.config.mode, offsets=offsets, vocab_size=vocab,
                             dim=self.hidden_size)
        return [spec.metadata() for spec in specs]
