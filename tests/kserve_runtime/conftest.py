"""KServe's real Hugging Face runtime and our predictor, side by side on the same tiny models.

The runtime lives in a venv of its own (see workbench.testsupport.kserve_runtime). Where it is not installed
these tests skip with the command that installs it; CI installs it and sets WORKBENCH_REQUIRE_KSERVE_RUNTIME=1,
so there a missing runtime fails instead of skipping.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import httpx
import pytest

from tests.foreign_servers import require
from tests.kserve_runtime.combos import COMBOS, Combo
from workbench.testsupport.kserve_runtime import missing_reason, served_runtime_with_grpc
from workbench.testsupport.servers import ServersAhead, free_port, served


@dataclass(frozen=True)
class Pair:
    combo: Combo
    kserve: str  # base URL of KServe's huggingfaceserver
    ours: str  # base URL of `workbench serve`
    model_dir: str
    kserve_grpc: str  # "127.0.0.1:PORT" of the runtime's gRPC server
    ours_grpc: str  # "127.0.0.1:PORT" of ours (`--grpc_port`)


@contextlib.contextmanager
def served_pair(combo: Combo, model_dir: str):
    grpc_port = free_port()
    with served_runtime_with_grpc(model_dir, *combo.flags, *combo.kserve_extra) as (kserve, kserve_grpc), \
            served(model_dir, *combo.flags, *combo.ours_extra, "--grpc_port", str(grpc_port)) as ours:
        yield Pair(combo, kserve, ours, model_dir, kserve_grpc, f"127.0.0.1:{grpc_port}")


def pytest_generate_tests(metafunc):
    """`pair` is session-scoped and parametrized over the module's COMBOS (default: all), so pytest runs every
    test of one combo together and each pair of servers starts once."""
    if "pair" in metafunc.fixturenames:
        combos = getattr(metafunc.module, "COMBOS", COMBOS)
        metafunc.parametrize("pair", combos, ids=[c.id for c in combos], indirect=True, scope="session")


@pytest.fixture(scope="session")
def kserve_runtime_installed():
    require(missing_reason(), "WORKBENCH_REQUIRE_KSERVE_RUNTIME")


@pytest.fixture(scope="session")
def pairs(request, kserve_runtime_installed, tiny_models):
    """pairs.get(combo) -> Pair; the next combo's servers start while one combo is checked."""
    model_dirs = {(c.task, c.cased): tiny_models(c.task, cased=c.cased) for c in COMBOS}  # built here, not in a thread
    order = [item.callspec.params["pair"] for item in request.session.items
             if "pair" in getattr(getattr(item, "callspec", None), "params", {})]

    def start(combo: Combo):
        return served_pair(combo, model_dirs[(combo.task, combo.cased)])

    ahead = ServersAhead(order or COMBOS, start)
    yield ahead
    ahead.close()


@pytest.fixture(scope="session")
def pair(request, pairs) -> Pair:
    return pairs.get(request.param)


@pytest.fixture(scope="session")
def http():
    with httpx.Client(timeout=120.0) as client:
        yield client
