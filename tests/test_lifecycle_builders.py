"""Builders: upload validation (pickles refused), content-addressed contexts, the local bundle
and Kaniko Job backends, and the canary rollout against the real embedded serving platform."""

from __future__ import annotations

import json
import pickle
import threading
import time

import pytest
import requests
from lifecycle_helpers import exported, object_event, torch_save_bytes_for_upload

from builders import (
    ControlAPI,
    KanikoJobBackend,
    LocalBundleBackend,
    RefusedModel,
    Rollout,
    check_model,
    digits_sample,
    make_context,
    v2_smoke,
)
from eventing import types
from functions import FunctionConfig
from functions.predict import request_body
from functions.predict.v2 import output_array
from functions.train import build_model, checkpoint_bytes, make_recipe
from knative.serving.bundles import load_bundle
from storage import open_store


# ---- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: pickle.dumps({"w": [1.0, 2.0]}), "is a Python pickle: refused"),
        (lambda: pickle.dumps([1], protocol=0), "is a Python pickle: refused"),
        (torch_save_bytes_for_upload, "torch.save/pickle zip archive: refused"),
        (lambda: b"\x00garbage" * 50, "not a model knflow can serve"),
        (lambda: exported(trained=False)["digits/1/model.onnx"][:5000], "not a valid ONNX"),
        (lambda: b"", "empty"),
    ],
)
def test_unsafe_or_corrupt_uploads_are_refused_with_the_reason(make, message):
    with pytest.raises(RefusedModel, match=message) as info:
        check_model(make(), "upload.pt")
    if "pickle" in message:
        assert "runs arbitrary code" in str(info.value) and "safetensors" in str(info.value)


def test_safetensors_torchscript_and_onnx_are_accepted_within_the_limit():
    files = exported(trained=False)
    checkpoint = checkpoint_bytes(build_model().eval(), make_recipe())
    assert check_model(checkpoint, "m.safetensors").format == "safetensors"
    assert check_model(files["digits/1/model.pt"], "m.pt").format == "torchscript"
    assert check_model(files["digits/1/model.onnx"], "m.onnx").format == "onnx"
    with pytest.raises(RefusedModel, match="over the 1 MiB limit"):
        check_model(checkpoint, "m.safetensors", limit=2**20)


# ---- contexts and backends -----------------------------------------------------------------------
def test_context_digest_is_content_addressed():
    files = {"digits/config.pbtxt": b"name: 'digits'", "digits/1/model.onnx": b"\x08model"}
    a, b = make_context(files), make_context(dict(reversed(files.items())))
    assert a.digest == b.digest and a.tar_gz() == b.tar_gz()  # order and time do not matter
    changed = make_context({**files, "digits/1/model.onnx": b"\x08modeL"})
    assert changed.digest != a.digest
    assert make_context(files, labels={"x": "y"}).digest == a.digest  # labels are not content
    assert set(a.files) >= {
        "Dockerfile",
        "requirements.txt",
        "runtime.json",
        "model/digits/1/model.onnx",
    }
    requirements = a.files["requirements.txt"].decode().splitlines()
    assert requirements and all("==" in line for line in requirements)
    assert "onnxruntime==" in a.files["requirements.txt"].decode()
    runtime = json.loads(a.files["runtime.json"])
    assert runtime["function"] == "predict" and len(runtime["sources_sha256"]) == 64
    full = make_context(files, include_code=True)
    assert "code/functions/predict/function.py" in full.files
    assert "COPY code/ /app/" in full.files["Dockerfile"].decode()


def test_local_bundle_is_written_once_and_runs_in_the_embedded_runtime(data_dir):
    context = make_context({"digits/1/model.onnx": b"\x08x", "digits/config.pbtxt": b"c"})
    backend = LocalBundleBackend(data_dir)
    image = backend.build(context)
    assert image == f"bundle://{data_dir.resolve()}/.knflow/bundles/{context.digest}"
    bundle = load_bundle(image)  # the serving engine's own reader
    assert bundle.function == "predict" and bundle.model is not None
    assert bundle.env["KNFLOW_MODEL_DIR"] == str(bundle.root / "model")
    manifest = bundle.root / "bundle.json"
    before = manifest.stat().st_mtime_ns
    assert backend.build(context) == image and manifest.stat().st_mtime_ns == before
    assert not [p for p in bundle.root.parent.iterdir() if p.name.startswith(".tmp")]


def walk(obj):
    yield obj
    if isinstance(obj, dict):
        for value in obj.values():
            yield from walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from walk(value)


def test_kaniko_job_is_unprivileged_and_reads_its_context_from_the_store():
    context = make_context({"digits/1/model.onnx": b"\x08x"}, include_code=True)
    backend = KanikoJobBackend(
        registry="registry.example.com/knflow", s3_endpoint="http://minio:9000"
    )
    job = backend.render(context)
    text = json.dumps(job)
    assert "docker.sock" not in text and "hostPath" not in text and "hostNetwork" not in text
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert all(set(v) == {"name", "secret"} for v in pod["volumes"])  # secrets only
    (kaniko,) = pod["containers"]
    sc = kaniko["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "SYS_ADMIN" not in sc["capabilities"]["add"]
    assert f"--context=s3://artifacts/build-contexts/{context.digest}.tar.gz" in kaniko["args"]
    assert (
        f"--destination=registry.example.com/knflow/predict:{context.digest[:24]}" in kaniko["args"]
    )
    secret_refs = [e for e in kaniko["env"] if "valueFrom" in e]
    assert {e["name"] for e in secret_refs} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert not any("value" in e and "SECRET" in e["name"] for e in kaniko["env"])
    import kubernetes_validate

    kubernetes_validate.validate(job, "1.30", strict=True)


# ---- rollouts on the embedded platform -----------------------------------------------------------
MINI_SPEC = """
apiVersion: knflow.dev/v1alpha1
kind: Pipeline
metadata: {name: rollout-test, namespace: knflow}
buckets: [models, artifacts]
services:
  - name: predict
    function: predict
    config: {model_name: digits}
    containerConcurrency: 8
    annotations: {autoscaling.knative.dev/min-scale: "1"}
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    from knative.embedded import Platform
    from knative.spec import load_spec

    root = tmp_path_factory.mktemp("rollout")
    (root / "spec.yaml").write_text(MINI_SPEC)
    data = root / "data"
    data.mkdir()
    with Platform(load_spec(root / "spec.yaml"), data, broker=False, sources=False) as p:
        yield p, data


def current_split(api: ControlAPI) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in api.service("predict")["status"]["traffic"]}


def smoke():
    inputs, labels = digits_sample(32)
    return v2_smoke("digits", inputs, labels, 0.9)


@pytest.mark.slow
def test_good_model_goes_through_a_canary_to_100_percent(platform):
    p, data = platform
    api = ControlAPI.discover(data)
    before = max(current_split(api).items(), key=lambda kv: kv[1])[0]
    image = LocalBundleBackend(data).build(make_context(exported(trained=True)))
    splits: list[dict[str, int]] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            splits.append(current_split(api))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = Rollout(api, "predict", canary_percent=10, canary_seconds=1.5, smoke=smoke()).run(
            image
        )
    finally:
        done.set()
        watcher.join()
    assert result.outcome == "promoted", result.steps
    assert result.previous == before and result.revision != before
    assert {before: 90, result.revision: 10} in splits  # the canary was live
    assert current_split(api) == {result.revision: 100}
    x, y = digits_sample(64)
    doc = requests.post(
        f"{p.service_url('predict')}/v2/models/digits/infer", json=request_body(x), timeout=60
    ).json()
    assert (output_array(doc, "label") == y).mean() >= 0.9
    again = Rollout(api, "predict", smoke=smoke()).run(image)
    assert again.outcome == "unchanged" and again.revision == result.revision


@pytest.mark.slow
def test_model_that_does_not_load_is_rolled_back_with_the_reason(platform):
    _, data = platform
    api = ControlAPI.discover(data)
    serving = max(current_split(api).items(), key=lambda kv: kv[1])[0]
    broken = {**exported(trained=False), "digits/1/model.onnx": b"\x08\x01corrupt" * 8}
    image = LocalBundleBackend(data).build(make_context(broken))
    result = Rollout(api, "predict", canary_seconds=0.5, smoke=smoke()).run(image)
    assert result.outcome == "rolled-back" and "does not load" in result.reason
    assert current_split(api) == {serving: 100}
    failed = api.revision(result.revision)
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "does not load" in ready["message"]


@pytest.mark.slow
def test_pickled_upload_is_refused_and_the_old_revision_keeps_serving(platform):
    from functions.builder import new

    _, data = platform
    api = ControlAPI.discover(data)
    serving = max(current_split(api).items(), key=lambda kv: kv[1])[0]
    store = open_store(f"file://{data}")
    store.put("models", "digits.pt", torch_save_bytes_for_upload())
    builder = new()
    builder.start(
        FunctionConfig(
            function="builder",
            data_dir=data,
            store_url=f"file://{data}",
            config={"service": "predict", "canary_seconds": 0.5},
        )
    )
    reply = builder.handle(object_event(store, "models", "digits.pt"))
    assert reply.get_type() == types.REVISION_FAILED
    assert "pickle" in reply.get_data()["reason"] and reply.get_data()["refused"] is True
    assert current_split(api) == {serving: 100}
    failed = api.revision(reply.get_data()["revision"])
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "pickle" in ready["message"]
    record = json.loads(
        store.get("artifacts", f"rollouts/predict/{failed['metadata']['name']}.json")
    )
    assert record["outcome"] == "rolled-back"
    # nothing of the pickle was packaged
    bundles = data / ".knflow" / "bundles"
    assert (
        not any(
            b"torch.save" in f.read_bytes() or f.name == "digits.pt"
            for f in bundles.rglob("*")
            if f.is_file()
        )
        if bundles.exists()
        else True
    )
