"""Two processes for real on the CPU: `accelerate launch --multi_gpu` and `torchrun` form one gloo group.

One 2-process run (tiny model, the project's sample, 4 steps) is shared by most assertions; a
`torchrun` run resumes it from its step-2 checkpoint; two failing runs check that an error on one
or every process stops all of them within the subprocess timeout (a hang would hit it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workbench.ner.conll import read_sentences
from workbench.ner.sample import write_sample

REPO = Path(__file__).resolve().parents[2]
SCRIPT = str(REPO / "train" / "ner.py")
TRAIN_SAMPLES, EVAL_SAMPLES, BATCH, EVAL_BATCH, STEPS = 100, 37, 8, 8, 4  # 37 / 8: 5 batches, odd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch() -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), SCRIPT]


def torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", SCRIPT]


def environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.pop("ACCELERATE_USE_CPU", None)  # the script must find the CPU group by itself
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def launch(command: list[str], args: list[str], cwd: Path, timeout: float = 240):
    started = time.monotonic()
    done = subprocess.run(command + args, cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)
    return done, time.monotonic() - started


def training_args(model_dir: str, data: dict[str, Path], output_dir: Path) -> list[str]:
    return ["--model_name_or_path", model_dir, "--train_file", str(data["train"]),
            "--validation_file", str(data["validation"]), "--output_dir", str(output_dir),
            "--max_train_samples", str(TRAIN_SAMPLES), "--max_eval_samples", str(EVAL_SAMPLES),
            "--per_device_train_batch_size", str(BATCH), "--per_device_eval_batch_size", str(EVAL_BATCH),
            "--max_train_steps", str(STEPS), "--checkpointing_steps", "2", "--learning_rate", "1e-3",
            "--seed", "5", "--disable_tqdm"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def two_process_run(tiny_models, data, tmp_path_factory):
    """Run A: accelerate launch, 2 processes, 4 steps. Run B: torchrun, 2 processes, resumed from A's step 2."""
    model_dir = tiny_models("token_classification")
    run_a, run_b = tmp_path_factory.mktemp("mp-a"), tmp_path_factory.mktemp("mp-b")
    done_a, _ = launch(accelerate_launch(), training_args(model_dir, data, run_a / "out"), run_a)
    assert done_a.returncode == 0, done_a.stdout[-3000:] + done_a.stderr[-3000:]
    done_b, _ = launch(torchrun(), training_args(model_dir, data, run_b / "out")
                       + ["--resume_from_checkpoint", str(run_a / "out" / "step_2")], run_b)
    assert done_b.returncode == 0, done_b.stdout[-3000:] + done_b.stderr[-3000:]
    return {"a": run_a / "out", "b": run_b / "out", "stdout_a": done_a.stdout, "stdout_b": done_b.stdout,
            "model_dir": model_dir}


def test_one_group_of_two_processes_saves_one_model_once(two_process_run):
    out, stdout = two_process_run["a"], two_process_run["stdout_a"]
    results = json.loads((out / "results.json").read_text())
    assert results["num_processes"] == 2 and results["completed_steps"] == STEPS
    assert stdout.count(f"batch {BATCH} x 2 processes") == 1  # printed by the main process only
    assert stdout.count("model saved in") == 1
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert (out / "model.safetensors").is_file() and (out / "training_curves.png").stat().st_size > 1000
    assert not list(out.glob(".*partial*"))
    assert results["data"]["validation"]["sentences"] == EVAL_SAMPLES


def expected_training_counts(model_dir: str, data: dict[str, Path]) -> tuple[int, int]:
    """Sub-tokens and sentences of the batches both processes train on in the first STEPS steps."""
    from transformers import AutoTokenizer

    from workbench.ner.data import LengthGroupedBatchSampler

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sentences, _ = read_sentences(data["train"])
    sentences = sentences[:TRAIN_SAMPLES]
    lengths = [len(ids) for ids in tokenizer([s.tokens for s in sentences], is_split_into_words=True,
                                             truncation=True, max_length=256)["input_ids"]]
    sampler = LengthGroupedBatchSampler(lengths, BATCH, seed=5)
    batches = sampler.batches(0)[:2 * STEPS]  # process 0 takes batches 0, 2, ..., process 1 takes 1, 3, ...
    return sum(lengths[i] for b in batches for i in b), sum(len(b) for b in batches)


def test_token_and_sentence_counts_are_summed_across_processes(two_process_run, data):
    results = json.loads((two_process_run["a"] / "results.json").read_text())
    tokens, sentences = expected_training_counts(two_process_run["model_dir"], data)
    assert (results["train_tokens"], results["train_sentences"]) == (tokens, sentences)
    assert sentences == 2 * STEPS * BATCH


def one_process_predictions(model_dir: Path, data: dict[str, Path]) -> list[list[str]]:
    """What a single process predicts with the saved weights, through the same evaluation code."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from workbench.ner.data import SortedBatchSampler, encode_sentences, make_collator
    from workbench.ner.evaluation import in_data_order, predict_tags
    from workbench.ner.labels import continuation_ids

    model = AutoModelForTokenClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    sentences, _ = read_sentences(data["validation"])
    encoded, _ = encode_sentences(sentences[:EVAL_SAMPLES], tokenizer, {t: i for i, t in enumerate(labels)},
                                  continuation_ids(labels), max_length=256, first_subtoken_only=True)
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 1
    sampler = SortedBatchSampler(encoded.lengths(), EVAL_BATCH)
    loader = accelerator.prepare(DataLoader(encoded, batch_sampler=sampler, collate_fn=make_collator(tokenizer)))
    predicted, _, _ = predict_tags(accelerator.prepare(model), loader, accelerator, labels, show_progress=False)
    return in_data_order(sampler.order, predicted)


def read_predictions(path: Path) -> list[list[str]]:
    return [[line.split()[2] for line in block.splitlines()] for block in path.read_text().strip().split("\n\n")]


def test_gathered_predictions_equal_one_process_sentence_for_sentence(two_process_run, data):
    out = two_process_run["a"]
    two = read_predictions(out / "validation_predictions.txt")
    one = one_process_predictions(out, data)
    assert len(two) == EVAL_SAMPLES  # the duplicates filling the last uneven batch were dropped
    assert two == one
    gold, _ = read_sentences(data["validation"])
    assert [[line.split()[0] for line in block.splitlines()]
            for block in (out / "validation_predictions.txt").read_text().strip().split("\n\n")] == \
        [s.tokens for s in gold[:EVAL_SAMPLES]]


def test_torchrun_resumes_a_two_process_checkpoint_to_the_same_state(two_process_run):
    run_a, run_b = two_process_run["a"], two_process_run["b"]
    assert "resumed from" in two_process_run["stdout_b"]
    results_b = json.loads((run_b / "results.json").read_text())
    assert results_b["num_processes"] == 2 and results_b["completed_steps"] == STEPS
    state_a = json.loads((run_a / "step_4" / "trainer_state.json").read_text())
    state_b = json.loads((run_b / "step_4" / "trainer_state.json").read_text())
    assert (state_b["train_sentences"], state_b["train_tokens"]) == (state_a["train_sentences"],
                                                                     state_a["train_tokens"])
    weights_a, weights_b = load_file(run_a / "step_4" / "model.safetensors"), load_file(run_b / "step_4" / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.allclose(weights_a[name], weights_b[name], atol=1e-6, rtol=1e-5), name


def test_a_bad_label_file_stops_both_processes_with_the_reason(tiny_models, data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Lisa B-PER\nParis\n")
    args = training_args(tiny_models("token_classification"), data, tmp_path / "out")
    args[args.index("--train_file") + 1] = str(bad)
    done, seconds = launch(torchrun(), args, tmp_path, timeout=180)
    assert done.returncode != 0
    assert f"{bad}:2: expected a word and a tag" in done.stderr
    assert "of 2]" in done.stderr  # "[process R of 2]": whichever process reported first; the other was stopped
    assert seconds < 170


def test_a_failed_save_on_the_main_process_stops_the_other_within_seconds(tiny_models, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".model.partial").write_text("a file where the model's temporary directory goes")
    done, seconds = launch(accelerate_launch(), training_args(tiny_models("token_classification"), data, out),
                           tmp_path, timeout=180)
    assert done.returncode != 0, done.stdout[-2000:]
    assert ".model.partial" in done.stderr and "[process 0 of 2]" in done.stderr
    # Process 1, waiting in a barrier, is stopped by the launcher or fails on the lost connection, whichever
    # comes first: it does not report the save failure as its own.
    assert not any(".model.partial" in line and "[process 1 of 2]" in line for line in done.stderr.splitlines())
    assert not (out / "model.safetensors").exists()
    # Process 1 waits in a barrier whose own timeout is 30 minutes: the run ending at all shows it was stopped.
    assert seconds < 170
