"""`--backend`: which runner serves the model (the one place that chooses the runner class)."""

from __future__ import annotations

from workbench.serving.args import ServeConfig
from workbench.serving.runner import EncoderRunner


def make_runner(config: ServeConfig) -> EncoderRunner:
    """torch's EncoderRunner, or for `--backend onnxruntime` the ONNX Runtime one (the onnx extra)."""
    if config.backend == "onnxruntime":
        from workbench.serving.onnx_backend import OnnxEncoderRunner

        return OnnxEncoderRunner(config)
    return EncoderRunner(config)
