"""`accelerate launch train/ner.py` for real: a subprocess, the tiny model, 2 steps on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_accelerate_launch_trains_and_saves(tiny_models, tmp_path):
    output_dir = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "train" / "ner.py"), "--model_name_or_path", tiny_models("token_classification"),
               "--output_dir", str(output_dir), "--max_train_steps", "2", "--per_device_train_batch_size", "8",
               "--max_eval_samples", "40", "--disable_tqdm"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((output_dir / "results.json").read_text())
    assert results["completed_steps"] == 2 and results["num_processes"] == 1
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "training_curves.png").is_file()
    assert "best epoch 1" in done.stdout


def test_plain_python_entry_point_shows_help():
    done = subprocess.run([sys.executable, str(REPO / "train" / "ner.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    assert "--label_first_subtoken_only" in done.stdout and "--resume_from_checkpoint" in done.stdout
