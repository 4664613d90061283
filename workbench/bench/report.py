"""How `workbench bench` shows its results: a text table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

COLUMNS = ("concurrency", "req/s", "texts/s", "tokens/s", "p50 ms", "p90 ms", "p99 ms", "padding eff", "client cpu",
           "ok", "errors")
# A client process busier than this (CPU seconds per wall second) may be what limits the figures.
CLIENT_BUSY = 0.8


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def format_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in errors.items()) if errors else "0"


def level_row(level: dict) -> list[str]:
    latency = level["latency_ms"]
    return [str(level["concurrency"]), _number(level["requests_per_s"]), _number(level["texts_per_s"]),
            _number(level["tokens_per_s"], 0), _number(latency["p50"]), _number(latency["p90"]),
            _number(latency["p99"]), _number(level.get("padding_efficiency"), 3),
            _percent(level.get("client_cpu_share")), f"{level['ok']}/{level['requests']}",
            format_errors(level["errors"])]


def format_header(report: dict) -> str:
    bound = (f"{report['requests']} requests" if report.get("requests") is not None
             else f"{report['duration_s']:g} s")
    protocol = report["protocol"] + (f" ({report['contents']} contents)" if report.get("contents") else "")
    lines = [
        f"endpoint {report['endpoint']}  model {report['model_name']}  protocol {protocol}",
        f"{report['batch']} text(s) per request, {bound} per level after {report['warmup']} warm-up, "
        f"texts: {report['texts']['source']} ({report['texts']['count']})",
        f"tokens/s counts {report['token_count']}; padding eff = the server's real / computed tokens "
        "(its /metrics; - where it exports none or, for grpc, without --metrics-url)",
        "client cpu = this load generator's CPU time / wall time in the level (one process; 100% = one core "
        "busy): near 100% the client, not the server, may be the limit",
    ]
    if report.get("load_average"):
        lines.append("client machine load average at start: " + " ".join(f"{x:.2f}" for x in report["load_average"]))
    return "\n".join(lines)


# Fixed widths so that rows can be printed one by one as levels finish.
WIDTHS = (11, 9, 9, 10, 9, 9, 9, 11, 10, 11)


def _line(row: Sequence[str]) -> str:
    # Right-align the figures, leave the free-text error column last and unpadded.
    return "  ".join([cell.rjust(width) for cell, width in zip(row[:-1], WIDTHS)] + [row[-1]])


def format_table_head() -> str:
    return _line(COLUMNS) + "\n" + "  ".join("-" * width for width in WIDTHS + (len(COLUMNS[-1]),))


def format_level(level: dict) -> str:
    return _line(level_row(level))


def format_table(levels: Sequence[dict]) -> str:
    return "\n".join([format_table_head()] + [format_level(level) for level in levels])


def format_notes(report: dict) -> str:
    """What the server said for each kind of failure, and a warning when the client was near a full core."""
    lines, seen = [], set()
    for level in report["levels"]:
        for category, detail in level.get("error_details", {}).items():
            if category not in seen:
                seen.add(category)
                lines.append(f"{category} (first at concurrency {level['concurrency']}): {detail}")
    busy = [level for level in report["levels"] if (level.get("client_cpu_share") or 0) >= CLIENT_BUSY]
    if busy:
        levels = ", ".join(str(level["concurrency"]) for level in busy)
        cores = report.get("client_cores")
        lines.append(f"warning: the client used >= {CLIENT_BUSY:.0%} of a core at concurrency {levels}"
                     + (f" on a {cores}-core machine" if cores else "")
                     + ": the load generator may be limiting these figures")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    notes = format_notes(report)
    return format_header(report) + "\n\n" + format_table(report["levels"]) + ("\n\n" + notes if notes else "")


def write_json(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def write_plot(report: dict, path: str | Path) -> Path:
    """Throughput (texts/s) and p99 latency against concurrency, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report["levels"]
    concurrency = [level["concurrency"] for level in levels]
    throughput = [level["texts_per_s"] for level in levels]
    p99 = [level["latency_ms"]["p99"] if level["latency_ms"]["p99"] is not None else float("nan")
           for level in levels]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(concurrency, throughput, marker="o")
    left.set_title("throughput")
    left.set_ylabel("texts / s")
    right.plot(concurrency, p99, marker="o", color="tab:red")
    right.set_title("p99 latency")
    right.set_ylabel("ms")
    for axis in (left, right):
        axis.set_xlabel("concurrency")
        if len(set(concurrency)) > 1 and min(concurrency) > 0:
            axis.set_xscale("log", base=2)
        axis.set_xticks(concurrency, [str(c) for c in concurrency])
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    figure.suptitle(f"{report['model_name']} at {report['endpoint']} ({report['protocol']}, "
                    f"{report['batch']} text(s)/request)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
