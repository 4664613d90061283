"""Options, targets and fixtures of the conformance suite.

`pytest conformance --endpoint URL --model-name NAME --task TASK [--mode ...] [--protocol ...]` checks one
endpoint; `pytest conformance` alone serves tiny models itself, one endpoint per (task, mode), and checks
each against a local reference computation. See docs/conformance.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import profiles, semantics
from conformance.client import ConformanceClient
from conformance.levels import LEVELS
from workbench.tasks import LOGIT_TASKS

# No HF_HUB_OFFLINE here: --reference-model may name a hub model on a machine that can reach the hub.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MARKERS = [
    "clause(text): the protocol clause a conformance check enforces",
    "protocol(name): a conformance check that needs protocol v1 or v2 (or 'both': both of them)",
    "needs_task: a conformance check that needs to know the task (--task)",
    "level(name): what a conformance check holds the endpoint to: protocol, kserve or workbench (--level)",
]
SUITE_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser, pluginmanager):
    group = parser.getgroup("conformance", "conformance suite (KServe V1 / Open Inference Protocol V2)")
    group.addoption("--endpoint", default=None, help="base URL of the endpoint to check, e.g. http://host:8080 "
                    "(default: serve tiny models locally, one endpoint per task and mode)")
    group.addoption("--model-name", default="model", help="model name in URLs (default: model)")
    group.addoption("--task", default=None, choices=semantics.SUITE_TASKS, help="task the endpoint serves")
    group.addoption("--protocol", default=None, choices=("v1", "v2", "both"), help="protocols to check (default: both)")
    group.addoption("--host-header", default=None, help="Host header to send (e.g. NAME.NS.example.com for Istio)")
    group.addoption("--mode", default=None, choices=semantics.MODES,
                    help="output mode the server was started with: default (ids), probabilities "
                         "(--return_probabilities) or logits (--return_raw_logits)")
    group.addoption("--expect", default=None, metavar="FILE", help="golden expectation file (JSON) to compare outputs with")
    group.addoption("--reference-model", default=None, metavar="DIR_OR_ID",
                    help="compute expected outputs locally with transformers from this model")
    group.addoption("--mask-token", default="[MASK]",
                    help="mask token in fill-mask texts when no --reference-model tells it (default: [MASK])")
    group.addoption("--disable-lower-case", action="store_true", default=False,
                    help="the endpoint runs with --disable_lower_case (reference computation keeps the case)")
    group.addoption("--disable-special-tokens", action="store_true", default=False,
                    help="the endpoint runs with --disable_special_tokens")
    group.addoption("--return-offsets-mapping", action="store_true", default=False,
                    help="the endpoint runs with --return_offsets_mapping (token classification): check the "
                         "offset_mapping tensors of V1 and V2")
    if not pluginmanager.hasplugin("timeout"):
        # pytest-timeout owns --timeout when installed; then its value is also the HTTP timeout.
        group.addoption("--timeout", default=None, type=float, help="HTTP timeout per request in seconds (default 30)")
    group.addoption("--request-timeout", default=None, type=float, help="HTTP timeout per request in seconds (default 30)")
    group.addoption("--profile", default="strict", choices=profiles.PROFILES,
                    help="which known divergences to report as such instead of failing (default: strict)")
    group.addoption("--level", default=None, metavar="LEVELS",
                    help="comma-separated levels of checks to run: " + ", ".join(LEVELS) + " (default: all). "
                         "protocol: what the KServe V1 / OIP documents require; kserve: what KServe's Hugging Face "
                         "runtime does beyond them; workbench: workbench's extensions")
    group.addoption("--conformance-report", default=None, metavar="PATH",
                    help="write a JSON + Markdown report (PATH.json/PATH.md, or PATH and PATH-with-.md when PATH ends .json)")
    group.addoption("--isvc", default=None, help="resolve the endpoint from this KServe InferenceService")
    group.addoption("--namespace", default="default", help="namespace of --isvc (default: default)")
    group.addoption("--ingress", default=None, metavar="HOST:PORT", help="ingress gateway address for --isvc")
    group.addoption("--serve-with", default="builtin", choices=("builtin", "kserve", "kserve-runtime"),
                    help="without --endpoint: serve the tiny models with the built-in predictor (default), with "
                         "KServe's ModelServer hosting a plain custom model (kserve: "
                         "workbench.testsupport.kserve_modelserver) or with KServe's real huggingfaceserver "
                         "(kserve-runtime: installed in a venv of its own, see workbench.testsupport.kserve_runtime)")
    group.addoption("--grpc-endpoint", default=None, metavar="HOST:PORT",
                    help="also check this OIP V2 gRPC endpoint (conformance/test_v2_grpc.py; skipped without it)")
    group.addoption("--grpc-max-message", default=4 * 1024 * 1024, type=int, metavar="BYTES",
                    help="the gRPC endpoint's receive limit; a message slightly above it must be refused with "
                         "RESOURCE_EXHAUSTED (default: 4194304, gRPC's default)")


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    selected_levels(config)  # a bad --level is a usage error before anything runs
    path = config.getoption("--conformance-report", default=None)
    if path:
        from conformance.report import ConformanceReport

        config.pluginmanager.register(ConformanceReport(path, config), "conformance-report")


# --- settings and target specs -----------------------------------------------------------------

@dataclass(frozen=True)
class TargetSpec:
    id: str
    task: str | None
    mode: str
    protocols: tuple[str, ...]
    endpoint: str | None = None  # None: serve a tiny model locally
    host_header: str | None = None
    model_name: str = "model"
    input_name: str = "text"  # V2 text input: the one the model's metadata declares, else "text"


def request_timeout(config) -> float:
    for name in ("--request-timeout", "--timeout"):
        try:
            value = config.getoption(name)
        except ValueError:
            continue
        if value:
            return float(value)
    return 30.0


def _protocols(value: str | None) -> tuple[str, ...]:
    return ("v1", "v2") if value in (None, "both") else (value,)


def target_specs(config) -> list[TargetSpec]:
    cached = getattr(config, "_conformance_specs", None)
    if cached is not None:
        return cached
    endpoint = config.getoption("--endpoint")
    model_name = config.getoption("--model-name")
    host_header = config.getoption("--host-header")
    protocol = config.getoption("--protocol")
    task = config.getoption("--task")
    mode = config.getoption("--mode")
    isvc = config.getoption("--isvc")
    if isvc and not endpoint:
        try:
            from workbench.k8s.discovery import DiscoveryError, resolve_isvc
        except ImportError as exc:
            pytest.exit(f"--isvc needs workbench.k8s.discovery: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        try:
            found = resolve_isvc(isvc, config.getoption("--namespace"), ingress=config.getoption("--ingress"),
                                 timeout=max(300.0, request_timeout(config)))
        except DiscoveryError as exc:
            pytest.exit(f"cannot resolve InferenceService {isvc!r} in namespace "
                        f"{config.getoption('--namespace')!r}: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        endpoint = found.base_url
        config._conformance_isvc_grpc = (f"InferenceService {config.getoption('--namespace')}/{isvc}",
                                         getattr(found, "grpc", None))
        host_header = host_header or found.host_header
        if model_name == "model" and getattr(found, "model_name", None):
            model_name = found.model_name
        protocol = protocol or getattr(found, "protocol", None)
        task = task or getattr(found, "task", None)
        mode = mode or getattr(found, "mode", None)
    if endpoint:
        specs = [TargetSpec(f"{task or 'task-unknown'}-{mode or 'default'}", task, mode or "default",
                            _protocols(protocol), endpoint.rstrip("/"), host_header, model_name)]
    else:
        tasks = [task] if task else list(semantics.TASKS)
        if not task and config.getoption("--serve-with") == "kserve":
            # the KServe ModelServer stand-in transcribes the tasks with heads only (no text_embedding)
            tasks = [t for t in tasks if t in LOGIT_TASKS]
        specs = [TargetSpec(f"{t}-{m}", t, m, _protocols(protocol), model_name=model_name)
                 for t in tasks for m in ([mode] if mode else semantics.task_modes(t))]
    config._conformance_specs = specs
    return specs


@dataclass(frozen=True)
class GrpcSpec:
    """The gRPC endpoint the checks of test_v2_grpc.py talk to: --grpc-endpoint, else what --isvc discovered."""

    address: str | None  # HOST:PORT; None: no gRPC endpoint (skip_reason says why, when there is a reason)
    authority: str | None = None  # :authority to send: --host-header, else the discovered InferenceService host
    source: str = "--grpc-endpoint"
    discovered: bool = False
    skip_reason: str | None = None


NO_GRPC_PORT = ("exposes no gRPC port (no predictor container port named h2c, grpc or grpc-*), so the gRPC "
                "checks skip; pass --grpc-endpoint HOST:PORT to check one")


def grpc_spec(config) -> GrpcSpec:
    cached = getattr(config, "_conformance_grpc", None)
    if cached is not None:
        return cached
    explicit = config.getoption("--grpc-endpoint")
    target_specs(config)  # resolves --isvc (and its gRPC port) when asked
    label, found = getattr(config, "_conformance_isvc_grpc", (None, None))
    authority = config.getoption("--host-header") or (found.authority if found is not None else None)
    if explicit:
        spec = GrpcSpec(explicit, authority)
    elif label is None:
        spec = GrpcSpec(None)
    elif found is None:
        spec = GrpcSpec(None, skip_reason=f"{label} {NO_GRPC_PORT}")
    elif found.address is None:
        spec = GrpcSpec(None, skip_reason=f"{label}: {found.how}; {found.hint}")
    else:
        spec = GrpcSpec(found.address, authority, f"discovered from {label}: {found.how}", discovered=True,
                        skip_reason=found.hint)
    config._conformance_grpc = spec
    return spec


def check_grpc_endpoint(config, model_name: str) -> None:
    """Reach the gRPC endpoint before any check: an unreachable --grpc-endpoint stops the run; an unreachable
    discovered one only skips the gRPC checks (the REST checks still run), saying why and what to pass."""
    from dataclasses import replace

    from conformance.grpc_client import probe as grpc_probe

    spec = grpc_spec(config)
    if spec.address is None:
        return
    problem = grpc_probe(spec.address, model_name, timeout=min(10.0, request_timeout(config)),
                         authority=spec.authority, source=spec.source)
    if problem is None:
        return
    if not spec.discovered:
        stop(config, problem)
    reason = f"{problem}; the gRPC checks skip. To reach it from outside the cluster: {spec.skip_reason}"
    config._conformance_grpc = replace(spec, address=None, skip_reason=reason)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"conformance: {reason}", yellow=True)


def pytest_sessionstart(session):
    specs = target_specs(session.config)  # resolve --isvc once, before collection; exits with a clear message on failure
    if not session.config.option.collectonly:
        preflight_endpoints(session.config, specs)
        check_grpc_endpoint(session.config, specs[0].model_name)


def stop(config, reason: str) -> None:
    """Stop the run before any check, in one line (and say so in the report, when one is asked for)."""
    report = config.pluginmanager.get_plugin("conformance-report")
    if report is not None:
        report.stop(reason)
    pytest.exit(f"conformance: {reason}", returncode=pytest.ExitCode.USAGE_ERROR)


def preflight_endpoints(config, specs: list[TargetSpec]) -> None:
    """Reach each --endpoint target and find its model before anything is collected; stop with one line
    otherwise. A task or mode the server's metadata tells fills in a missing --task / --mode."""
    from dataclasses import replace

    from conformance.preflight import PreflightError, probe

    checked = []
    for spec in specs:
        if spec.endpoint is None:
            checked.append(spec)
            continue
        client = ConformanceClient(spec.endpoint, host_header=spec.host_header, timeout=request_timeout(config))
        recorder = client.recording([])

        def request(method: str, path: str):
            return recorder.request(method, path, json_body={} if method == "POST" else None)

        try:
            findings = probe(request, spec.endpoint, spec.model_name, spec.protocols, spec.host_header)
        except PreflightError as exc:
            stop(config, str(exc))
        finally:
            client.close()
        told = {"task": findings.task, "mode": findings.mode}
        differs = [f"{key} {told[key]} (checked as {value})" for key, value in (("task", spec.task), ("mode", spec.mode))
                   if told[key] and value and told[key] != value and config.getoption(f"--{key}") is not None]
        if differs:
            config._conformance_notes = [*getattr(config, "_conformance_notes", []),
                                         f"{spec.endpoint}: the server's model metadata says " + ", ".join(differs)]
        if findings.input_name:
            spec = replace(spec, input_name=findings.input_name)
        inferred = {}
        if spec.task is None and findings.task:
            inferred["task"] = findings.task
        if config.getoption("--mode") is None and findings.mode and findings.mode != spec.mode:
            inferred["mode"] = findings.mode
        if inferred:
            task, mode = inferred.get("task", spec.task), inferred.get("mode", spec.mode)
            spec = replace(spec, id=f"{task or 'task-unknown'}-{mode}", task=task, mode=mode)
            config._conformance_inferred = {**getattr(config, "_conformance_inferred", {}), **inferred}
        checked.append(spec)
    config._conformance_specs = checked


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        specs = target_specs(metafunc.config)
        metafunc.parametrize("target", specs, ids=[s.id for s in specs], indirect=True, scope="session")


MODULE_ORDER = ["test_v1_protocol", "test_v2_protocol", "test_task_semantics", "test_outputs", "test_consistency",
                "test_errors"]


def _module_rank(item) -> int:
    name = getattr(getattr(item, "module", None), "__name__", "").rsplit(".", 1)[-1]
    return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)


# --- levels ------------------------------------------------------------------------------------

def selected_levels(config) -> tuple[str, ...]:
    """The levels of --level (default: all), validated."""
    value = config.getoption("--level", default=None)
    if not value:
        return tuple(LEVELS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in LEVELS]
    if unknown or not names:
        raise pytest.UsageError(f"--level {value}: {'unknown level ' + repr(unknown[0]) if unknown else 'no level'} "
                                f"(levels: {', '.join(LEVELS)}; e.g. --level protocol,kserve)")
    return tuple(dict.fromkeys(names))


def is_suite_check(item) -> bool:
    """A check of this suite (conformance/test_*.py), not a test elsewhere in the same session."""
    path = Path(str(getattr(item, "path", "") or ""))
    return path.parent == SUITE_DIR and path.name.startswith("test_")


def check_level(item) -> str | None:
    marker = item.get_closest_marker("level")
    return marker.args[0] if marker is not None and marker.args else None


def select_by_level(config, items) -> None:
    """Every check must declare its level (an error otherwise); drop the checks of levels not selected."""
    unlevelled = sorted({item.nodeid.split("[", 1)[0] for item in items
                         if is_suite_check(item) and check_level(item) not in LEVELS})
    if unlevelled:
        raise pytest.UsageError(f"conformance checks without a level: {', '.join(unlevelled)} -- decorate each "
                                f"with @level(...) from conformance.checks (one of {', '.join(LEVELS)})")
    wanted = selected_levels(config)
    dropped = [item for item in items if is_suite_check(item) and check_level(item) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not (is_suite_check(item) and check_level(item) not in wanted)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Checks of the levels asked for; protocol checks first, errors last; skip, before any server starts,
    checks whose protocol or task the target lacks."""
    select_by_level(config, items)
    positions = [i for i, item in enumerate(items) if _module_rank(item) < len(MODULE_ORDER)]
    for position, item in zip(positions, sorted((items[i] for i in positions), key=_module_rank)):
        items[position] = item
    for item in items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("target")
        if spec is None:
            continue
        marker = item.get_closest_marker("protocol")
        proto = item.callspec.params.get("proto")  # checks parametrized over the protocol
        if marker is not None or proto is not None:
            wanted = proto or marker.args[0]
            needed = ("v1", "v2") if wanted == "both" else (wanted,)
            missing = [p for p in needed if p not in spec.protocols]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"protocol {'/'.join(missing)} not checked (--protocol)"))
        if item.get_closest_marker("needs_task") is not None and spec.task is None:
            item.add_marker(pytest.mark.skip(reason="needs --task to know what the outputs mean"))


# --- short failure reasons ---------------------------------------------------------------------

def _where_failed(excinfo) -> str:
    """`conformance/test_x.py:42`: the innermost line of the suite's own code in the traceback."""
    entries = [entry for entry in excinfo.traceback if Path(str(entry.path)).parent == SUITE_DIR]
    checks = [entry for entry in entries if Path(str(entry.path)).name.startswith("test_")]
    entry = (checks or entries or list(excinfo.traceback))[-1]
    path = Path(str(entry.path))
    shown = f"{SUITE_DIR.name}/{path.name}" if path.parent == SUITE_DIR else path.name
    return f"{shown}:{entry.lineno + 1}"


def _lines(text: str, count: int = 2, width: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    kept = [line if len(line) <= width else line[:width] + "…" for line in lines[:count]]
    if len(lines) > count:
        kept[-1] += f" … ({len(lines) - count} more)"
    return "\n".join(kept) or "(no message)"


def short_failure(excinfo) -> str | None:
    """One or two lines for a check that failed an assertion, broke a rule (semantics.Violation) or could
    not talk to the endpoint; None for anything else (a bug in a check keeps its traceback)."""
    import httpx

    from conformance.preflight import connection_problem

    exc = excinfo.value
    if isinstance(exc, AssertionError):
        text = str(exc)
        message = text.split("\nassert ", 1)[0] if "\nassert " in text else text
        return f"{_where_failed(excinfo)}: {_lines(message)}"
    if isinstance(exc, semantics.Violation):
        return f"{_where_failed(excinfo)}: {_lines(str(exc))}"
    if isinstance(exc, httpx.HTTPError):
        try:
            request = f"{exc.request.method} {exc.request.url}: "
        except RuntimeError:  # an error raised before any request was made
            request = ""
        return f"{_where_failed(excinfo)}: {request}{connection_problem(exc)} ({type(exc).__name__})"
    return None


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item, call):
    """A failed check's reason in a line or two (`--tb=long` etc. keep pytest's tracebacks)."""
    outcome = yield
    report = outcome.get_result()
    if (report.failed and call.excinfo is not None and report.when in ("setup", "call") and is_suite_check(item)
            and item.config.option.tbstyle == "auto"):
        short = short_failure(call.excinfo)
        if short is not None:
            report.longrepr = short


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def conformance_config(pytestconfig):
    return pytestconfig


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """task -> a tiny model directory built once per session (offline runs only)."""
    from workbench.testsupport.tiny_models import build_tiny_model

    built: dict[str, str] = {}

    def get(task: str) -> str:
        if task not in built:
            built[task] = str(build_tiny_model(task, tmp_path_factory.mktemp(f"conformance-{task}")))
        return built[task]

    return get


def pytest_terminal_summary(terminalreporter, config):
    for note in getattr(config, "_conformance_notes", []):
        terminalreporter.write_line(f"conformance: {note}")


def pytest_collection_finish(session):
    """Stop when selected checks need a task nobody told; remember the order in which targets will be used
    (for starting the next server ahead)."""
    from conformance.preflight import task_missing_message

    if not session.config.option.collectonly:
        for spec in target_specs(session.config):
            if spec.endpoint is None or spec.task is not None:
                continue
            needing = [item for item in session.items if item.get_closest_marker("needs_task") is not None
                       and getattr(getattr(item, "callspec", None), "params", {}).get("target") is spec]
            if needing:
                stop(session.config, task_missing_message(spec.endpoint, spec.model_name, len(needing)))
    order: list = []
    for item in session.items:
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("target")
        if spec is not None and spec not in order and item.get_closest_marker("skip") is None:
            order.append(spec)
    session.config._conformance_order = order


@pytest.fixture(scope="session")
def local_servers(pytestconfig, tiny_model_dir):
    """Servers of the offline run (no --endpoint), each started while the previous target is checked."""
    from conformance.target import LocalServers

    order = getattr(pytestconfig, "_conformance_order", None) or target_specs(pytestconfig)
    servers = LocalServers(pytestconfig.getoption("--serve-with"), order, tiny_model_dir)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def reference_models(pytestconfig):
    from conformance.reference import ReferenceModel

    cache: dict[tuple, ReferenceModel] = {}

    def get(source: str, task: str) -> ReferenceModel:
        key = (source, task)
        if key not in cache:
            cache[key] = ReferenceModel(source, task,
                                        lower_case=not pytestconfig.getoption("--disable-lower-case"),
                                        add_special_tokens=not pytestconfig.getoption("--disable-special-tokens"))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def target(request, pytestconfig, tiny_model_dir, reference_models, local_servers):
    from conformance.target import Target

    spec: TargetSpec = request.param
    timeout = request_timeout(pytestconfig)
    profile = pytestconfig.getoption("--profile")
    reference_source = pytestconfig.getoption("--reference-model")

    def build(url: str, reference_dir: str | None) -> Target:
        reference = reference_models(reference_dir, spec.task) if reference_dir and spec.task else None
        built = Target(spec.id, url, spec.model_name, spec.task, spec.mode, spec.protocols, profile,
                       host_header=spec.host_header, reference=reference, input_name=spec.input_name,
                       mask_token=pytestconfig.getoption("--mask-token"))
        built.http = ConformanceClient(url, host_header=spec.host_header, timeout=timeout)
        return built

    if spec.endpoint is not None:
        built = build(spec.endpoint, reference_source)
        yield built
        built.http.close()
        return
    model_dir = tiny_model_dir(spec.task)
    with local_servers.serving(spec) as url:
        built = build(url, reference_source or model_dir)
        yield built
        built.http.close()


@pytest.fixture
def exchanges(request):
    """The HTTP exchanges of the running check (read by the report plugin)."""
    recorded: list = []
    request.node.conformance_exchanges = recorded
    return recorded


@pytest.fixture
def client(target, exchanges):
    return target.http.recording(exchanges)


@pytest.fixture
def profile(pytestconfig):
    return pytestconfig.getoption("--profile")


@pytest.fixture(scope="session")
def expectations(pytestconfig):
    """The golden cases of --expect (None without it)."""
    path = pytestconfig.getoption("--expect")
    if not path:
        return None
    from conformance.golden import load_expectations

    return load_expectations(path)
