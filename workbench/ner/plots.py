"""training_curves.png: training/validation loss and validation F1 per epoch (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def plot_training_curves(epochs: Sequence[dict], path: str | Path) -> Path:
    """`epochs`: results.json's "epochs" entries (epoch, train_loss, eval_loss, overall_f1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    xs = [e["epoch"] for e in epochs]
    figure, (loss_axes, f1_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(xs, [e.get("train_loss") for e in epochs], marker="o", label="training loss")
    loss_axes.plot(xs, [e.get("eval_loss") for e in epochs], marker="o", label="validation loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)
    f1_axes.plot(xs, [e.get("overall_f1") for e in epochs], marker="o", color="tab:green", label="validation F1")
    if any("strict_f1" in e for e in epochs):
        f1_axes.plot(xs, [e.get("strict_f1") for e in epochs], marker="x", color="tab:red",
                     label="validation F1 (strict IOB2)")
    f1_axes.set_xlabel("epoch")
    f1_axes.set_ylabel("F1")
    f1_axes.set_ylim(0, 1)
    f1_axes.legend()
    f1_axes.grid(alpha=0.3)
    for axes in (loss_axes, f1_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle("NER fine-tuning")
    figure.tight_layout()
    tmp = path.parent / f".{path.name}.partial.png"
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)
    return path
