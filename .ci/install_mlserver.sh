#!/usr/bin/env bash
# MLServer + mlserver-huggingface (a V2 server nobody here wrote) in a venv of its own: its pins clash with ours.
# Usage: .ci/install_mlserver.sh VENV_DIR
#  - transformers<4.42: mlserver-huggingface 1.7 imports transformers.pipelines.Conversation (removed in 4.42);
#  - no onnxruntime: with it, optimum imports its ONNX exporter, which needs a private torch function that
#    torch 2.13 no longer has; the PyTorch pipelines MLServer serves here do not need it.
set -euo pipefail
venv=${1:-.venv-mlserver}
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet "mlserver==1.7.1" "mlserver-huggingface==1.7.1" "transformers==4.41.2"
"$venv/bin/python" -m pip uninstall --quiet --yes onnxruntime || true
"$venv/bin/python" -c "import mlserver_huggingface" && echo "mlserver ready in $venv"
