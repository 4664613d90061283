#!/usr/bin/env bash
# A fresh `pip install .` with no extras (torch pinned first) must run every entry point:
# the CLI, `workbench serve` answering V1 and V2, the conformance suite against it, a few training
# steps on the project's sample, and `workbench manifests`. Usage: .ci/smoke_no_extras.sh VENV_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(realpath -m "${1:-.venv-noextras}")
repo=$PWD
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0
"$venv/bin/python" -m pip install --quiet .
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'kill ${server:-} 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"  # away from the checkout: only the installed package is importable
bin="$venv/bin"

"$bin/workbench" --help > /dev/null
"$bin/workbench" tiny-model token_classification "$work/tiny"
port=$("$bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$bin/workbench" serve --model_dir "$work/tiny" --model_name model --http_port "$port" --host 127.0.0.1 \
    > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" > /dev/null && break
    sleep 1
done
curl -sf "http://127.0.0.1:$port/v1/models/model:predict" -d '{"instances": ["My name is Lisa"]}' | grep -q predictions
curl -sf "http://127.0.0.1:$port/v2/models/model/infer" \
    -d '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["My name is Lisa"]}]}' | grep -q outputs
"$bin/python" -m conformance --endpoint "http://127.0.0.1:$port" --model-name model \
    --task token_classification -q > "$work/conformance.log" 2>&1 \
    || { tail -n 30 "$work/conformance.log"; exit 1; }
tail -n 1 "$work/conformance.log"
kill "$server"; server=

"$bin/python" "$repo/train/ner.py" --model_name_or_path "$work/tiny" --max_train_steps 3 \
    --output_dir "$work/trained" > "$work/train.log" 2>&1 || { tail -n 30 "$work/train.log"; exit 1; }
test -f "$work/trained/config.json"
"$bin/workbench" manifests --list > /dev/null
"$bin/workbench" manifests --name ner --storage-uri pvc://models/ner --task token_classification \
    | grep -q "kind: InferenceService"
echo "no-extras smoke: passed"
