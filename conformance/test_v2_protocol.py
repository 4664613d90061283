"""Open Inference Protocol (V2) REST: health, metadata, model readiness, inference response schema."""

from __future__ import annotations

from conformance import semantics
from conformance.checks import clause, json_body, level, protocol
from conformance.profiles import diverge_or_fail
from conformance.target import new_request_id

pytestmark = protocol("v2")


def _probe_body(response, key: str, profile: str, divergence: str, what: str) -> None:
    """Health bodies: OIP shows {key: true}; status code is what counts (empty bodies: profile divergence)."""
    body = json_body(response)
    if isinstance(body, dict) and body.get(key) is True:
        return
    diverge_or_fail(profile, divergence, response,
                    f"{what}: status 200 but body is not {{\"{key}\": true}}: {response.text[:200]!r}")


@level("protocol")
@clause("OIP-REST §Server Live: GET v2/health/live -> 200 {\"live\": true}")
def test_v2_server_live(client, target, profile):
    """GET /v2/health/live answers 200 and says live."""
    response = client.get("/v2/health/live")
    assert response.status_code == 200, f"live probe answered {response.status_code}"
    _probe_body(response, "live", profile, "v2-health-body", "server live")


@level("protocol")
@clause("OIP-REST §Server Ready: GET v2/health/ready -> 200 {\"ready\": true} when all models are ready")
def test_v2_server_ready(client, target, profile):
    """GET /v2/health/ready answers 200 and says ready."""
    response = client.get("/v2/health/ready")
    assert response.status_code == 200, f"ready probe answered {response.status_code}"
    _probe_body(response, "ready", profile, "v2-health-body", "server ready")


@level("protocol")
@clause("OIP-REST §Server Metadata: GET v2 -> 200 {\"name\": str, \"version\": str, \"extensions\": [str]}")
def test_v2_server_metadata(client, target):
    """GET /v2 gives the server's name, version and extensions."""
    response = client.get("/v2")
    assert response.status_code == 200, f"server metadata answered {response.status_code}"
    body = json_body(response)
    assert isinstance(body, dict), f"body is not a JSON object: {response.text[:200]}"
    assert isinstance(body.get("name"), str), f"'name' missing or not a string: {body}"
    assert isinstance(body.get("version"), str), f"'version' missing or not a string: {body}"
    extensions = body.get("extensions")
    assert isinstance(extensions, list) and all(isinstance(e, str) for e in extensions), \
        f"'extensions' is not a list of strings: {extensions!r}"


@level("protocol")
@clause("OIP-REST §Model Metadata: GET v2/models/<m> -> 200 {\"name\": m, \"platform\": str, \"inputs\": [...], \"outputs\": [...]}")
def test_v2_model_metadata_schema(client, target):
    """GET /v2/models/<model> has name, platform, inputs and outputs lists."""
    response = client.get(f"/v2/models/{target.model_name}")
    assert response.status_code == 200, f"model metadata answered {response.status_code}"
    body = json_body(response)
    assert isinstance(body, dict), f"body is not a JSON object: {response.text[:200]}"
    assert body.get("name") == target.model_name, f"name {body.get('name')!r} != {target.model_name!r}"
    assert isinstance(body.get("platform"), str), f"'platform' missing or not a string: {body}"
    for key in ("inputs", "outputs"):
        assert isinstance(body.get(key), list), f"'{key}' missing or not a list: {body}"
    if body.get("versions") is not None:
        assert isinstance(body["versions"], list) and all(isinstance(v, str) for v in body["versions"]), \
            f"'versions' is not a list of strings: {body['versions']!r}"


@level("protocol")
@clause("OIP-REST §Model Metadata: inputs/outputs describe the model's tensors ($metadata_tensor: name, datatype, shape)")
def test_v2_model_metadata_describes_tensors(client, target, profile):
    """Model metadata lists at least one input and one output tensor, each with name, datatype and shape."""
    response = client.get(f"/v2/models/{target.model_name}")
    assert response.status_code == 200, f"model metadata answered {response.status_code}"
    body = json_body(response) or {}
    inputs, outputs = body.get("inputs") or [], body.get("outputs") or []
    if not inputs or not outputs:
        diverge_or_fail(profile, "v2-model-metadata-tensors", response,
                        f"model metadata has {len(inputs)} inputs and {len(outputs)} outputs; "
                        "a client cannot learn the tensor names/datatypes")
    for where, tensor in [*(("inputs", t) for t in inputs), *(("outputs", t) for t in outputs)]:
        assert isinstance(tensor, dict) and isinstance(tensor.get("name"), str), f"{where}: tensor without a name: {tensor}"
        assert tensor.get("datatype") in semantics.DATATYPES, f"{where}: bad datatype in {tensor}"
        shape = tensor.get("shape")
        assert isinstance(shape, list) and all(isinstance(d, int) and d >= -1 for d in shape), \
            f"{where}: shape must be integers (-1 = variable): {tensor}"


@level("protocol")
@clause("OIP-REST §Model Ready: GET v2/models/<m>/ready -> 200 {\"name\": m, \"ready\": true}")
def test_v2_model_ready(client, target, profile):
    """GET /v2/models/<model>/ready answers 200 for the served model."""
    response = client.get(f"/v2/models/{target.model_name}/ready")
    assert response.status_code == 200, f"model ready answered {response.status_code}"
    body = json_body(response)
    if not (isinstance(body, dict) and body.get("ready") is True):
        diverge_or_fail(profile, "v2-model-ready-body", response,
                        f"model ready: status 200 but body is not {{\"name\", \"ready\": true}}: {response.text[:200]!r}")
    assert body.get("name") in (None, target.model_name), f"name {body.get('name')!r} != {target.model_name!r}"


def _infer(client, target, request_id=None):
    # One text: what a [2] BYTES tensor means is the model's business (KServe: two texts; MLServer's HF
    # runtime: two positional arguments), so the protocol checks ask only what any text model accepts.
    response = client.post(target.v2_infer_path, json_body=target.v2_body(target.texts(1), request_id))
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:300]}"
    body = json_body(response)
    assert isinstance(body, dict), f"body is not a JSON object: {response.text[:200]}"
    return body


@level("protocol")
@clause("OIP-REST §Inference Response: {\"model_name\": str, \"outputs\": [$response_output]} with 200")
def test_v2_infer_response_schema(client, target):
    """V2 infer answers model_name (the model asked) and a non-empty outputs list."""
    body = _infer(client, target)
    assert body.get("model_name") == target.model_name, f"model_name {body.get('model_name')!r} != {target.model_name!r}"
    assert isinstance(body.get("outputs"), list) and body["outputs"], f"'outputs' missing or empty: {str(body)[:200]}"
    if body.get("model_version") is not None:
        assert isinstance(body["model_version"], str), f"model_version is not a string: {body['model_version']!r}"
    if body.get("parameters") is not None:
        assert isinstance(body["parameters"], dict), f"parameters is not an object: {body['parameters']!r}"


@level("protocol")
@clause("OIP-REST §Inference Request: \"id\" optional, but if specified it must be returned in the response")
def test_v2_infer_echoes_request_id(client, target):
    """The request's id comes back unchanged in the response."""
    request_id = new_request_id()
    body = _infer(client, target, request_id)
    assert body.get("id") == request_id, f"sent id {request_id!r}, response id {body.get('id')!r}"


@level("protocol")
@clause("OIP-REST §Response Output: each output has name (str), shape ([uint64]), datatype (a tensor data type) and data")
def test_v2_infer_outputs_well_formed(client, target):
    """Every output tensor has a name, a non-negative integer shape, a known datatype and data."""
    body = _infer(client, target)
    for index, tensor in enumerate(semantics.output_list(body)):
        semantics.validate_tensor_header(tensor, f"outputs[{index}]")


@level("protocol")
@clause("OIP-REST §Tensor Data: the element count of data equals the product of shape")
def test_v2_infer_element_count_matches_shape(client, target):
    """For every output tensor, len(flatten(data)) == product(shape)."""
    body = _infer(client, target)
    for index, tensor in enumerate(semantics.output_list(body)):
        semantics.validate_tensor_header(tensor, f"outputs[{index}]")
        semantics.validate_element_count(tensor, f"outputs[{index}]")


@level("protocol")
@clause("OIP-REST §Tensor Data Types: every element is a value of the declared datatype (INT64 ints, BYTES strings, ...)")
def test_v2_infer_values_match_datatype(client, target):
    """Every output element is a valid value of the tensor's datatype."""
    body = _infer(client, target)
    for index, tensor in enumerate(semantics.output_list(body)):
        semantics.validate_tensor_header(tensor, f"outputs[{index}]")
        semantics.validate_datatype_values(tensor, f"outputs[{index}]")


@level("protocol")
@clause("OIP-REST §Tensor Data: BYTES elements in JSON are UTF-8 strings; non-ASCII text round-trips")
def test_v2_bytes_input_non_ascii_accepted(client, target):
    """A BYTES input with non-ASCII characters is answered 200 with a well-formed output."""
    text = target.texts(1)[0] + " café über"
    response = client.post(target.v2_infer_path, json_body=target.v2_body([text]))
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:300]}"
    for index, tensor in enumerate(semantics.output_list(json_body(response))):  # output names are the model's
        semantics.validate_v2_tensor(tensor, f"outputs[{index}]")


@level("kserve")
@clause("OIP-REST §Tensor Data: shape [] is a scalar of one element; KServe's e2e fixtures send one text with shape []")
def test_v2_scalar_shape_single_text_accepted(client, target):
    """A BYTES input with shape [] and one text is answered 200 with a well-formed output for one text."""
    body = {"inputs": [{"name": target.input_name, "shape": [], "datatype": "BYTES", "data": target.texts(1)}]}
    response = client.post(target.v2_infer_path, json_body=body)
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:300]}"
    for index, tensor in enumerate(semantics.output_list(json_body(response))):  # output names are the model's
        semantics.validate_v2_tensor(tensor, f"outputs[{index}]")
    assert tensor["shape"][:1] == [1], f"one text sent, output shape {tensor['shape']}"


def _shape_fits(declared, actual) -> bool:
    """A metadata shape (-1 = variable) describes an actual shape: same rank, fixed dimensions equal."""
    return (isinstance(declared, list) and len(declared) == len(actual)
            and all(d == -1 or d == a for d, a in zip(declared, actual)))


@level("protocol")
@clause("OIP-REST §Model Metadata: the outputs metadata lists are the tensors inference returns (name, datatype, "
        "shape with -1 for variable dimensions)")
def test_v2_model_metadata_matches_infer_outputs(client, target, profile):
    """Every output an inference returns is declared in model metadata with its datatype and a fitting shape,
    and every declared output is returned; the request's BYTES input is declared."""
    response = client.get(f"/v2/models/{target.model_name}")
    assert response.status_code == 200, f"model metadata answered {response.status_code}"
    metadata = json_body(response) or {}
    declared_inputs, declared = metadata.get("inputs") or [], metadata.get("outputs") or []
    if not declared or not declared_inputs:
        diverge_or_fail(profile, "v2-model-metadata-tensors", response,
                        f"model metadata declares {len(declared_inputs)} inputs and {len(declared)} outputs; "
                        "inference returns tensors it does not describe")
    body = _infer(client, target)
    returned = {t.get("name"): t for t in semantics.output_list(body) if isinstance(t, dict)}
    by_name = {t.get("name"): t for t in declared if isinstance(t, dict)}
    problems = []
    for name, tensor in returned.items():
        meta = by_name.get(name)
        if meta is None:
            problems.append(f"output {name!r} is returned but not in metadata outputs {sorted(map(str, by_name))}")
            continue
        if meta.get("datatype") != tensor.get("datatype"):
            problems.append(f"output {name!r}: metadata says {meta.get('datatype')}, inference returns {tensor.get('datatype')}")
        if not _shape_fits(meta.get("shape"), tensor.get("shape") or []):
            problems.append(f"output {name!r}: metadata shape {meta.get('shape')} does not fit returned shape {tensor.get('shape')}")
    for name in by_name:
        if name not in returned:
            problems.append(f"metadata declares output {name!r} but inference does not return it "
                            f"(returned: {sorted(map(str, returned))})")
    if not any(isinstance(t, dict) and t.get("datatype") == "BYTES" and isinstance(t.get("shape"), list)
               and len(t["shape"]) == 1 for t in declared_inputs):
        problems.append(f"no metadata input is a rank-1 BYTES text tensor like the one inference accepts: {declared_inputs}")
    assert not problems, "metadata and inference disagree:\n" + "\n".join(problems)


@level("protocol")
@clause("OIP-REST §Inference Request 'outputs': when the request names outputs, only those are returned")
def test_v2_infer_returns_only_requested_outputs(client, target):
    """Asking for the first output an inference returns gets exactly that output."""
    first = semantics.output_list(_infer(client, target))[0].get("name")
    request = target.v2_body(target.texts(1), new_request_id())
    request["outputs"] = [{"name": first}]
    response = client.post(target.v2_infer_path, json_body=request)
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:300]}"
    names = [t.get("name") for t in semantics.output_list(json_body(response)) if isinstance(t, dict)]
    assert names == [first], f"requested outputs [{first!r}], got {names}"
