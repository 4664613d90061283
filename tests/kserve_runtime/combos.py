"""What the differential tests run on KServe's real runtime and on our predictor: every task x mode, and
each flag we share with the runtime, on the same tiny model, with the same requests."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.tasks import MODE_FLAGS


@dataclass(frozen=True)
class Combo:
    task: str
    mode: str = "default"
    extra: tuple[str, ...] = ()  # flags beyond the mode's
    cased: bool = False  # serve the cased tiny model
    kserve_extra: tuple[str, ...] = ()  # flags only KServe's runtime gets (what ours infers by itself)
    ours_extra: tuple[str, ...] = ()  # flags only our predictor gets (its own backends)

    @property
    def flags(self) -> tuple[str, ...]:
        return (*MODE_FLAGS[self.mode], *self.extra)

    @property
    def id(self) -> str:
        return "-".join([self.task, self.mode, *[flag.lstrip("-") for flag in (*self.extra, *self.ours_extra)],
                         *(["cased-model"] if self.cased else [])])


TASKS = ("token_classification", "sequence_classification", "fill_mask")  # the tasks with output modes
ONNX = ("--backend", "onnxruntime")
COMBOS: list[Combo] = [Combo(task, mode) for task in TASKS for mode in ("default", "probabilities", "logits")] + [
    Combo("token_classification", extra=("--return_offsets_mapping",)),
    Combo("token_classification", "probabilities", extra=("--return_offsets_mapping",)),
    Combo("token_classification", cased=True),  # lowercasing is on by default: a cased vocab sees lower case
    Combo("token_classification", "logits", extra=("--disable_lower_case",), cased=True),
    Combo("sequence_classification", "logits", extra=("--disable_special_tokens",)),
    Combo("token_classification", extra=("--max_length", "8")),
    Combo("fill_mask", "logits", extra=("--max_length", "8")),
    Combo("sequence_classification", "logits", extra=("--dtype", "bfloat16")),
    Combo("sequence_classification", "probabilities", extra=("--dtype", "float32")),
    # A headless BertModel: ours infers text_embedding, KServe's runtime has to be told.
    Combo("text_embedding", kserve_extra=("--task", "text_embedding")),
    Combo("text_embedding", extra=("--task", "text_embedding", "--max_length", "8")),
    # Our ONNX Runtime backend (fp32) against the runtime's torch: the same answers, to the same tolerances.
    Combo("token_classification", "logits", ours_extra=ONNX),
    Combo("sequence_classification", "probabilities", ours_extra=ONNX),
    Combo("fill_mask", ours_extra=ONNX),
]

# Texts per task: multi-text requests (padding), one text alone, odd spacing, case and punctuation.
TEXTS = {
    "token_classification": [["My name is Wolfgang and I live in Berlin", "Hello",
                              "EU rejects German call to boycott British lamb ."],
                             ["John works for a company based in New York, said Mary."]],
    "sequence_classification": [["Hello, my dog is cute", "I am feeling sad",
                                 "a much longer text about the capital of France and the river of Paris"],
                                ["The minister visited London yesterday"]],
    "fill_mask": [["The capital of France is [MASK].", "The capital of [MASK] is paris.",
                   "[MASK] visited London yesterday"],
                  ["Hello, my [MASK] is [MASK] today"]],
    "text_embedding": [["My name is Wolfgang and I live in Berlin", "Hello", "",
                        "EU rejects German call to boycott British lamb ."],
                       ["The capital of France is Paris, said the minister."]],
}

# Why floats may differ at all: both servers run the same fp32 weights, but our predictor batches without
# padding (packed rows, a block-diagonal mask) where the runtime pads, so sums run in another order
# (measured differences ~1e-6); ONNX Runtime's fused fp32 kernels (attention, layer norm, GELU) also sum in
# their own order. Probabilities are rounded to 4 places on both sides, so a value near a
# rounding boundary may land one unit (1e-4) apart. bfloat16 keeps ~3 significant digits: logits of
# magnitude ~1 computed in another order differ by up to a few 1e-2.
TOLERANCE = {"default": 0.0, "probabilities": 1.0001e-4, "logits": 1e-4}
BF16_TOLERANCE = 6e-2
# Embeddings are unit vectors of fp32 values: the same hidden states summed in another order (packed rows
# and a mean over each text's own tokens here, padded rows and a masked sum there) differ by ~1e-7 per element
# (measured on the tiny model); 1e-5 is far below a real difference (the last token left out of the mean
# moved elements by ~3e-3 on the tiny model, and that mutant fails these tests).
EMBEDDING_TOLERANCE = 1e-5

# KServe's runtime builds its V2 embedding tensor with np.array(list of Python floats), so it declares FP64,
# though the values are the model's float32s; ours declares FP32 (issue 14: FP32 [B, D]). Only the datatype
# differs: the test replaces it, everything else of the body must be equal.
V2_DATATYPE_DIVERGENCE = {"text_embedding": ("FP64", "FP32")}


def tolerance(combo: Combo) -> float:
    if combo.task == "text_embedding":
        return EMBEDDING_TOLERANCE
    return BF16_TOLERANCE if "bfloat16" in combo.extra else TOLERANCE[combo.mode]
