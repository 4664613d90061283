"""What this machine lets the server use: the dtype the CPU runs natively, and how many CPUs it may use.

The rules are pure functions of what they are given (CPU flags, torch's capability string, cgroup file
texts, the environment), so tests can describe any machine; `detect_*` read the real ones.

dtype (`--dtype auto`): float16 on CUDA; on CPU bfloat16 only with AMX (`amx_bf16` and `amx_tile` in
/proc/cpuinfo, torch dispatching AVX512 kernels), else float32. Measured so far: bf16 beat fp32 on a Xeon
with AMX, and was 5x slower on an AVX2-only EPYC. AVX512-BF16 without AMX (AMD Zen 4) has bf16 dot
products: measured 1.6x faster than fp32 on one busy Zen 4 VM (docs/serving.md), but auto keeps float32
there, so that answers stay KServe's float32 ones unless `--dtype bfloat16` asks otherwise.

Threads: usable CPUs = the affinity mask's size, capped by the cgroup CPU quota rounded down (1.5 CPUs ->
1: a second thread would be throttled inside every period, and a parallel region waits for its slowest
thread), at least 1. Model workers x intra-op threads per worker: `choose_parallelism` (torch: one worker
with `--num_threads`, else `OMP_NUM_THREADS`, else the usable CPUs; ONNX Runtime: one single-thread
worker per usable CPU, up to 4).
Measured on a 2-core Zen 4 with one text per request (docs/benchmarks.md): on a quiet machine 2 threads
served 1.56x the requests of 1 at concurrency 32 (209.6 vs 134.2 req/s) and were no slower at c=1; beside
a neighbour that kept one core busy, 2 threads were 0.78x at c=1 and 1.02x at c=32, slower but not
collapsing. A pod owns its CPUs (the quota above), so the default is all of them; on a node shared with
busy neighbours `--num_threads` (usable minus one) keeps latency.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

AMX_FLAGS = frozenset({"amx_bf16", "amx_tile"})
# Default model workers of a GIL-free backend on a CPU: one per usable CPU, at most this many
# (rule 4 of choose_parallelism).
MAX_DEFAULT_WORKERS = 4
HALF_NAMES = {"float16": "float16", "half": "float16", "bfloat16": "bfloat16"}


# -- dtype ------------------------------------------------------------------------------------------
def cpu_flags(cpuinfo_text: str) -> frozenset[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text (x86 `flags`, ARM `Features`)."""
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bf16_support(flags: Iterable[str], capability: str) -> str:
    """'native' (AMX with AVX512 kernels), 'dot-products' (AVX512-BF16 only, unmeasured) or 'emulated'."""
    flags = frozenset(flags)
    if AMX_FLAGS <= flags and capability.startswith("AVX512"):
        return "native"
    if "avx512_bf16" in flags and capability.startswith("AVX512"):
        return "dot-products"
    return "emulated"


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # float32, float16 or bfloat16
    reason: str
    warning: str | None = None  # one line for the log when an explicit choice runs slowly here


def choose_dtype(requested: str, device_type: str, flags: Iterable[str], capability: str) -> DtypeChoice:
    flags = frozenset(flags)
    if requested in ("auto", "native") and device_type == "cuda":
        return DtypeChoice("float16", f"--dtype {requested} on CUDA")
    support = bf16_support(flags, capability)
    if requested == "auto":
        # KServe's runtime: auto is float32 on CPU; keeping it keeps the same answers.
        hint = {"native": "this CPU has AMX: --dtype native would pick bfloat16",
                "dot-products": "this CPU has AVX512-BF16: --dtype native would pick bfloat16",
                "emulated": "no native bfloat16 here"}[support]
        return DtypeChoice("float32", f"--dtype auto on CPU, as KServe's runtime ({hint}; torch capability "
                                      f"{capability})")
    if requested == "native":
        if support in ("native", "dot-products"):
            what = "AMX" if support == "native" else "AVX512-BF16 dot products, no AMX"
            return DtypeChoice("bfloat16", f"--dtype native on CPU, {what} (torch capability {capability})")
        return DtypeChoice("float32", f"--dtype native on CPU, no native bfloat16 (torch capability {capability})")
    name = HALF_NAMES.get(requested, "float32")
    reason = f"--dtype {requested}"
    if device_type == "cuda" or name == "float32":
        return DtypeChoice(name, reason)
    if name == "bfloat16":
        support = bf16_support(flags, capability)
        if support == "native":
            return DtypeChoice(name, reason + " (AMX)")
        if support == "dot-products":
            return DtypeChoice(name, reason + " (AVX512-BF16 dot products, no AMX)")
        return DtypeChoice(name, reason, f"--dtype bfloat16: this CPU (torch capability {capability}, no AMX) "
                                         "emulates bfloat16, measured up to 5x slower than float32; use "
                                         "--dtype float32 (or auto)")
    if "amx_fp16" in flags:
        return DtypeChoice(name, reason + " (AMX-FP16)")
    return DtypeChoice(name, reason, f"--dtype {requested}: this CPU (torch capability {capability}, no "
                                     "AMX-FP16) emulates float16 and runs it slower than float32; use "
                                     "--dtype float32 (or auto)")


def detect_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    try:
        return cpu_flags(Path(path).read_text(errors="replace"))
    except OSError:
        return frozenset()


def detect_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


# -- threads ----------------------------------------------------------------------------------------
def cgroup_quota(cpu_max: str | None = None, cfs_quota_us: str | None = None,
                 cfs_period_us: str | None = None) -> float | None:
    """CPUs allowed by the cgroup, or None when unlimited or unknown.

    `cpu_max`: cgroup v2 `cpu.max` ("quota period", quota "max" when unlimited); else cgroup v1
    `cpu.cfs_quota_us` (-1 when unlimited) over `cpu.cfs_period_us`."""
    try:
        if cpu_max is not None:
            fields = cpu_max.split()
            if not fields or fields[0] == "max":
                return None
            quota, period = int(fields[0]), int(fields[1]) if len(fields) > 1 else 100_000
        elif cfs_quota_us is not None and cfs_period_us is not None:
            quota, period = int(cfs_quota_us.strip()), int(cfs_period_us.strip())
        else:
            return None
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def usable_cpus(affinity: int, quota: float | None) -> int:
    """The CPUs this process may keep busy: the affinity mask's size, capped by the quota rounded down."""
    cpus = max(1, affinity)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str
    warning: str | None = None


def explicit_threads(flag: int | None, env: Mapping[str, str]) -> ThreadChoice | None:
    """Intra-op threads asked for: --num_threads, else OMP_NUM_THREADS; None when neither is set (a bad
    OMP_NUM_THREADS counts as not set, with a warning)."""
    if flag is not None:
        return ThreadChoice(flag, f"--num_threads {flag}")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp:
        # OpenMP allows a list ("4,2") for nested levels: the first is the outer level.
        first = omp.split(",")[0].strip()
        if first.isdigit() and int(first) >= 1:
            return ThreadChoice(int(first), f"OMP_NUM_THREADS={omp}")
        return ThreadChoice(0, "", f"OMP_NUM_THREADS={omp!r} is not a positive number; ignored")
    return None


def choose_threads(flag: int | None, env: Mapping[str, str], usable: int) -> ThreadChoice:
    """Intra-op threads: --num_threads, else OMP_NUM_THREADS, else the usable CPUs."""
    asked = explicit_threads(flag, env)
    if asked is not None and asked.threads >= 1:
        return asked
    return ThreadChoice(max(1, usable), "the usable CPUs", asked.warning if asked else None)


@dataclass(frozen=True)
class Parallelism:
    workers: int  # model workers: each runs its own batches, side by side with the others
    threads: int  # intra-op threads of each worker
    reason: str
    warning: str | None = None


def choose_parallelism(workers_flag: int | None, threads_flag: int | None, env: Mapping[str, str], usable: int,
                       cuda: bool = False, gil_free: bool = False) -> Parallelism:
    """Model workers x intra-op threads, first rule that applies:

    1. `--model_workers N`: N workers, each with the threads asked for (--num_threads, OMP_NUM_THREADS), else
       an even share of the usable CPUs;
    2. on CUDA: one worker (one device), the threads asked for, else the usable CPUs;
    3. threads asked for (--num_threads, OMP_NUM_THREADS): one worker with them (what those settings meant
       before there were workers);
    4. a backend whose forward pass runs without the GIL (`gil_free`: ONNX Runtime): one worker per usable
       CPU, at most MAX_DEFAULT_WORKERS, sharing the CPUs evenly;
    5. otherwise (torch, whose forward pass runs Python between its kernels): one worker with every usable CPU.

    Measured on a 2-core Zen 4, MiniLM NER, one CoNLL sentence per request: ONNX Runtime int8 with 2 workers
    x 1 thread served 1.07-1.40x the requests of 1 worker x 2 threads at concurrency 8 and 32; torch gained
    nothing (docs/benchmarks.md, "Model workers")."""
    usable = max(1, usable)
    asked = explicit_threads(threads_flag, env)
    warning = asked.warning if asked is not None else None
    if asked is not None and asked.threads < 1:
        asked = None
    if workers_flag is not None:
        threads = asked.threads if asked else max(1, usable // workers_flag)
        how = asked.reason if asked else f"{usable} usable CPU(s) shared"
        return Parallelism(workers_flag, threads, f"--model_workers {workers_flag}, {how}", warning)
    if cuda:
        return Parallelism(1, asked.threads if asked else usable,
                           "one worker on CUDA, " + (asked.reason if asked else "the usable CPUs"), warning)
    if asked is not None:
        return Parallelism(1, asked.threads, f"{asked.reason}, one worker", warning)
    if gil_free:
        workers = min(usable, MAX_DEFAULT_WORKERS)
        return Parallelism(workers, max(1, usable // workers),
                           f"one worker per usable CPU (at most {MAX_DEFAULT_WORKERS}): the backend runs without "
                           "the GIL", warning)
    return Parallelism(1, usable, "one worker with the usable CPUs (torch)", warning)


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def detect_usable_cpus(root: str = "/sys/fs/cgroup") -> tuple[int, str]:
    """(usable CPUs, how they were found) for this process."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    quota = cgroup_quota(read_text(f"{root}/cpu.max"))
    if quota is None:
        for v1 in (f"{root}/cpu", f"{root}/cpu,cpuacct"):
            quota = cgroup_quota(None, read_text(f"{v1}/cpu.cfs_quota_us"), read_text(f"{v1}/cpu.cfs_period_us"))
            if quota is not None:
                break
    cpus = usable_cpus(affinity, quota)
    how = f"affinity {affinity}, cgroup quota " + ("none" if quota is None else f"{quota:g}")
    return cpus, how
