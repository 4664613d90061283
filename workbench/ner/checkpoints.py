"""Atomic saves and exact resumption.

A save writes into a hidden sibling directory and renames it into place when complete, so a kill
during a save leaves the previous checkpoint (or nothing), never a half-written one. Each
checkpoint holds Accelerate's state (model, optimizer, scheduler, RNG states) and
`trainer_state.json` (step, epoch, batches consumed in the epoch, history so far).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

TRAINER_STATE = "trainer_state.json"
CHECKPOINT_PATTERN = re.compile(r"^(step|epoch)_(\d+)$")


def partial_path(target: Path) -> Path:
    return target.parent / f".{target.name}.partial"


def atomic_directory_write(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_dir)` then rename `tmp_dir` to `target` (replacing an older `target`)."""
    target = Path(target)
    tmp = partial_path(target)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    replace_directory(tmp, target)
    return target


def replace_directory(source: Path, target: Path) -> None:
    """Rename a finished `source` directory to `target`, moving an existing `target` aside first."""
    old = target.parent / f".{target.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    if old.exists():
        shutil.rmtree(old)


def atomic_files_write(target_dir: str | Path, write: Callable[[Path], None], last: tuple[str, ...] = ()) -> list[str]:
    """Write files into `target_dir` through a hidden temporary directory, one `os.replace` each.

    For the top level of the output directory, which also holds checkpoints and results: every
    file appears whole (rename is atomic); the files named in `last` (the weights) are moved last.
    """
    target_dir = Path(target_dir)
    tmp = target_dir / ".model.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    readable_by_all(tmp)
    names = sorted(p.name for p in tmp.iterdir())
    ordered = [n for n in names if n not in last] + [n for n in names if n in last]
    for name in ordered:
        destination = target_dir / name
        if (tmp / name).is_dir():
            if destination.exists():
                shutil.rmtree(destination)
        os.replace(tmp / name, destination)
    tmp.rmdir()
    return ordered


def readable_by_all(directory: Path) -> None:
    """Give written files the umask's usual mode (safetensors writes 0600, which a serving container
    running as another user could not read)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def write_json_atomic(path: str | Path, data) -> None:
    path = Path(path)
    tmp = path.parent / f".{path.name}.partial"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_checkpoint(accelerator, directory: str | Path, trainer_state: dict) -> Path:
    """Save Accelerate's state + trainer_state.json atomically. Called on every process."""
    directory = Path(directory)
    tmp = partial_path(directory)
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_directory(tmp, directory)
    accelerator.wait_for_everyone()
    return directory


def read_trainer_state(checkpoint: str | Path) -> dict:
    path = Path(checkpoint) / TRAINER_STATE
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint of this trainer (no {TRAINER_STATE})")
    return json.loads(path.read_text(encoding="utf-8"))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `output_dir` (step_N / epoch_N with a trainer state), oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        if child.is_dir() and CHECKPOINT_PATTERN.match(child.name) and (child / TRAINER_STATE).is_file():
            found.append((read_trainer_state(child).get("completed_steps", 0), child.stat().st_mtime, child))
    return [path for *_, path in sorted(found)]


def resolve_resume(value: str, output_dir: str | Path) -> Path:
    """`--resume_from_checkpoint PATH|latest` -> the checkpoint directory (clear error if none)."""
    if value == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no checkpoint in {output_dir}")
        return checkpoints[-1]
    path = Path(value)
    read_trainer_state(path)
    return path
