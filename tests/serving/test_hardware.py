"""The dtype and thread rules of workbench/serving/hardware.py on described machines (no real CPU read)."""

from __future__ import annotations

import pytest

from workbench.serving.hardware import (bf16_support, cgroup_quota, choose_dtype, choose_parallelism, choose_threads,
                                       cpu_flags,
                                        usable_cpus)

BASE = "fpu sse sse2 avx avx2 fma f16c"
AVX512 = BASE + " avx512f avx512dq avx512bw avx512vl avx512_vnni"
CPUS = {  # flags as /proc/cpuinfo lists them, and torch.backends.cpu.get_cpu_capability()
    "xeon_amx": (AVX512 + " avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8", "AVX512"),
    "epyc_avx2": (BASE, "AVX2"),
    "zen4": (AVX512 + " avx512_bf16", "AVX512"),
    "granite_rapids": (AVX512 + " avx512_bf16 amx_bf16 amx_tile amx_fp16", "AVX512"),
}


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"


def choice(requested: str, cpu: str, device: str = "cpu"):
    flags, capability = CPUS[cpu]
    return choose_dtype(requested, device, cpu_flags(cpuinfo(flags)), capability)


def test_flags_are_read_from_cpuinfo_text():
    assert {"amx_bf16", "amx_tile"} <= cpu_flags(cpuinfo(CPUS["xeon_amx"][0]))
    assert cpu_flags("Features\t: fp asimd bf16 sve\n") == {"fp", "asimd", "bf16", "sve"}
    assert cpu_flags("") == frozenset()


def test_bf16_support_levels():
    assert bf16_support(cpu_flags(cpuinfo(CPUS["xeon_amx"][0])), "AVX512") == "native"
    assert bf16_support(cpu_flags(cpuinfo(CPUS["zen4"][0])), "AVX512") == "dot-products"
    assert bf16_support(cpu_flags(cpuinfo(CPUS["epyc_avx2"][0])), "AVX2") == "emulated"
    # AMX flags, but torch dispatching AVX2 kernels (ATEN_CPU_CAPABILITY=avx2): not counted as native
    assert bf16_support(cpu_flags(cpuinfo(CPUS["xeon_amx"][0])), "AVX2") == "emulated"
    assert bf16_support({"amx_bf16"}, "AVX512") == "emulated"  # AMX needs its tiles too


def test_auto_dtype_on_cpu_is_float32_like_kserve_and_names_the_faster_choice():
    for cpu in ("xeon_amx", "epyc_avx2", "zen4"):
        picked = choice("auto", cpu)
        assert picked.dtype == "float32" and picked.warning is None
    assert "--dtype native would pick bfloat16" in choice("auto", "xeon_amx").reason
    assert "AVX512-BF16" in choice("auto", "zen4").reason
    assert "no native bfloat16" in choice("auto", "epyc_avx2").reason


def test_native_dtype_is_bf16_where_the_cpu_runs_it_natively():
    assert choice("native", "xeon_amx").dtype == "bfloat16" and "AMX" in choice("native", "xeon_amx").reason
    assert choice("native", "zen4").dtype == "bfloat16"
    assert choice("native", "epyc_avx2").dtype == "float32"
    assert choice("native", "epyc_avx2", device="cuda").dtype == "float16"


def test_auto_dtype_on_cuda_is_float16_whatever_the_cpu():
    for cpu in CPUS:
        assert choice("auto", cpu, device="cuda").dtype == "float16"


def test_explicit_bf16_on_an_emulating_cpu_warns_once_naming_the_fix():
    picked = choice("bfloat16", "epyc_avx2")
    assert picked.dtype == "bfloat16"
    assert "emulates bfloat16" in picked.warning and "--dtype float32" in picked.warning
    assert "\n" not in picked.warning
    assert choice("bfloat16", "xeon_amx").warning is None
    assert choice("bfloat16", "zen4").warning is None and "AVX512-BF16" in choice("bfloat16", "zen4").reason
    assert choice("bfloat16", "epyc_avx2", device="cuda").warning is None


@pytest.mark.parametrize("name", ["float16", "half"])
def test_explicit_float16_on_cpu_warns_without_amx_fp16(name):
    for cpu in ("xeon_amx", "epyc_avx2", "zen4"):
        picked = choice(name, cpu)
        assert picked.dtype == "float16" and "emulates float16" in picked.warning
    assert choice(name, "granite_rapids").warning is None


def test_explicit_float32_never_warns():
    for cpu in CPUS:
        for name in ("float32", "float"):
            assert choice(name, cpu) == choose_dtype(name, "cpu", (), "DEFAULT")
            assert choice(name, cpu).dtype == "float32" and choice(name, cpu).warning is None


def test_cgroup_v2_cpu_max():
    assert cgroup_quota("max 100000\n") is None
    assert cgroup_quota("100000 100000\n") == 1.0
    assert cgroup_quota("150000 100000\n") == 1.5
    assert cgroup_quota("400000 100000") == 4.0
    assert cgroup_quota("50000") == 0.5  # period omitted: the kernel default 100000
    assert cgroup_quota("") is None and cgroup_quota("garbage here") is None


def test_cgroup_v1_cfs_quota():
    assert cgroup_quota(None, "-1\n", "100000\n") is None
    assert cgroup_quota(None, "200000\n", "100000\n") == 2.0
    assert cgroup_quota(None, "50000", "100000") == 0.5
    assert cgroup_quota(None, None, None) is None
    assert cgroup_quota(None, "100000", "0") is None


def test_usable_cpus_is_affinity_capped_by_the_quota_rounded_down():
    assert usable_cpus(64, 1.0) == 1  # a 1-CPU pod on a 64-core node
    assert usable_cpus(64, None) == 64  # no quota ("max", -1)
    assert usable_cpus(64, 1.5) == 1  # fractional quotas round down
    assert usable_cpus(64, 2.9) == 2
    assert usable_cpus(64, 0.5) == 1  # never below one
    assert usable_cpus(2, 8.0) == 2  # affinity smaller than the quota
    assert usable_cpus(0, None) == 1


def test_threads_flag_beats_omp_num_threads_beats_usable_cpus():
    env = {"OMP_NUM_THREADS": "3"}
    assert choose_threads(5, env, 16).threads == 5
    assert choose_threads(None, env, 16).threads == 3
    assert choose_threads(None, env, 16).reason == "OMP_NUM_THREADS=3"
    assert choose_threads(None, {}, 16).threads == 16
    assert choose_threads(None, {}, 2).threads == 2
    assert choose_threads(None, {}, 1).threads == 1
    assert choose_threads(None, {}, 0).threads == 1
    assert choose_threads(None, {"OMP_NUM_THREADS": "4,2"}, 16).threads == 4  # nested levels: the outer one


def test_a_bad_omp_num_threads_is_ignored_with_a_warning():
    for bad in ("zero", "0", "-2"):
        picked = choose_threads(None, {"OMP_NUM_THREADS": bad}, 8)
        assert picked.threads == 8 and bad in picked.warning
    assert choose_threads(None, {"OMP_NUM_THREADS": ""}, 8).warning is None


def test_torch_gets_one_worker_with_every_usable_cpu():
    picked = choose_parallelism(None, None, {}, 8)
    assert (picked.workers, picked.threads) == (1, 8)
    assert (choose_parallelism(None, None, {}, 1).workers, choose_parallelism(None, None, {}, 1).threads) == (1, 1)


def test_a_gil_free_backend_gets_one_single_thread_worker_per_cpu_up_to_four():
    assert [(p.workers, p.threads) for p in (choose_parallelism(None, None, {}, n, gil_free=True)
                                              for n in (1, 2, 3, 4, 8, 64))] == \
        [(1, 1), (2, 1), (3, 1), (4, 1), (4, 2), (4, 16)]


def test_asked_threads_mean_one_worker_with_them():
    assert (choose_parallelism(None, 3, {}, 8, gil_free=True).workers, choose_parallelism(None, 3, {}, 8).threads) == (1, 3)
    omp = choose_parallelism(None, None, {"OMP_NUM_THREADS": "2"}, 8, gil_free=True)
    assert (omp.workers, omp.threads) == (1, 2) and "OMP_NUM_THREADS=2" in omp.reason


def test_the_workers_flag_shares_the_cpus_unless_threads_are_asked_for():
    assert (choose_parallelism(2, None, {}, 8).workers, choose_parallelism(2, None, {}, 8).threads) == (2, 4)
    assert choose_parallelism(3, None, {}, 2).threads == 1  # never below one thread
    assert choose_parallelism(2, 3, {}, 8).threads == 3
    assert choose_parallelism(2, None, {"OMP_NUM_THREADS": "1"}, 8).threads == 1


def test_cuda_gets_one_worker_whatever_the_backend():
    picked = choose_parallelism(None, None, {}, 16, cuda=True, gil_free=True)
    assert (picked.workers, picked.threads) == (1, 16)
    assert choose_parallelism(2, None, {}, 16, cuda=True).workers == 2  # the flag still wins


def test_a_bad_omp_num_threads_does_not_count_as_asked():
    picked = choose_parallelism(None, None, {"OMP_NUM_THREADS": "zero"}, 4, gil_free=True)
    assert (picked.workers, picked.threads) == (4, 1) and "zero" in picked.warning


def test_detect_reads_cgroup_v2_then_v1_files(tmp_path, monkeypatch):
    import os

    from workbench.serving.hardware import detect_usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("100000 100000\n")
    assert detect_usable_cpus(str(v2)) == (1, "affinity 64, cgroup quota 1")
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("250000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert detect_usable_cpus(str(tmp_path / "v1")) == (2, "affinity 64, cgroup quota 2.5")
    (v2 / "cpu.max").write_text("max 100000\n")
    assert detect_usable_cpus(str(v2)) == (64, "affinity 64, cgroup quota none")
