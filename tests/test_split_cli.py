"""`knflow split info` and `knflow autoscale train|show|apply` as a user runs them."""

from __future__ import annotations

import json

import pytest
from test_split_qlearning import synthetic_sweep

from functions.autoscaler import write_measurements


def test_split_info_lists_every_variant_with_costs(cli):
    out = cli("split", "info")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["VARIANT", "CUT", "AFTER"]
    assert [line.split()[0] for line in lines[1:4]] == ["a-light", "balanced", "a-heavy"]
    assert "untrained" in out.stdout

    doc = json.loads(cli("split", "info", "-o", "json", "--image-size", "112").stdout)
    assert [d["variant"] for d in doc] == ["a-light", "balanced", "a-heavy"]
    for d in doc:
        assert d["untrained"] is True and d["image_size"] == 112
        assert d["a"]["flops"] > 0 and d["b"]["params"] > 0
    assert doc[0]["a"]["flops"] < doc[1]["a"]["flops"] < doc[2]["a"]["flops"]


def test_split_info_bad_input(cli, tmp_path):
    out = cli("split", "info", "--variant", "thin")
    assert out.returncode == 2 and "unknown split variant 'thin'" in out.stderr
    (tmp_path / "w.pt").write_bytes(b"not a checkpoint")
    out = cli("split", "info", "--weights", str(tmp_path / "w.pt"))
    assert out.returncode == 1 and "not a plain torch state dict" in out.stderr
    assert "Traceback" not in out.stderr


def test_autoscale_train_writes_policy_and_plots(cli, data_dir):
    csv = write_measurements(data_dir / "sweep.csv", synthetic_sweep())
    out = cli(
        "autoscale",
        "train",
        "--csv",
        str(csv),
        "--episodes",
        "800",
        "--replica-cost",
        "0.3",
        "--alpha",
        "0.3",
        "--gamma",
        "0.5",
        "--epsilon-decay",
        "linear",
    )
    assert out.returncode == 0, out.stderr
    assert "episode 800/800" in out.stdout and "Policy written to" in out.stdout
    folder = data_dir / ".knflow" / "autoscale"
    policy = json.loads((folder / "policy.json").read_text())
    assert policy["training"]["alpha"] == 0.3 and policy["training"]["epsilon_decay"] == "linear"
    assert policy["links"] == ["clear", "congested"] and policy["targets"] == [1, 2, 4, 8]
    for png in ("policy.png", "policy-fit.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = json.loads(cli("autoscale", "show", "-o", "json").stdout)
    assert shown["settles_on"] == policy["settles_on"]


def test_autoscale_bad_input_is_one_clear_line(cli, data_dir):
    out = cli("autoscale", "train", "--csv", str(data_dir / "none.csv"))
    assert out.returncode == 2 and "cannot read" in out.stderr
    bad = data_dir / "bad.csv"
    bad.write_text("link,traffic,target,throughput,p95_ms,replicas\nclear,one,1,1,1,1\n")
    out = cli("autoscale", "train", "--csv", str(bad))
    assert out.returncode == 2 and "bad.csv:2" in out.stderr
    out = cli("autoscale", "train", "--csv", str(bad), "--gamma", "1.5")
    assert out.returncode == 2
    out = cli("autoscale", "show")
    assert out.returncode == 1 and "knflow autoscale train" in out.stderr
    out = cli("autoscale", "collect", "--link", "dial-up")
    assert out.returncode == 2 and "unknown link preset" in out.stderr
    out = cli("autoscale", "collect", "--targets", "1,x")
    assert out.returncode == 2 and "--targets" in out.stderr
    out = cli("autoscale", "collect")
    assert out.returncode == 1 and "no knflow instance is running" in out.stderr
    assert all("Traceback" not in o for o in (out.stderr,))


@pytest.mark.slow
def test_autoscale_collect_sweeps_the_live_halves(cli, data_dir):
    import csv

    spec = data_dir / "split.yaml"
    half = (
        "  - name: resnet-{x}\n    function: split\n"
        "    config: {{half: {x}, variant: a-heavy, image_size: 32, threads: 1{extra}}}\n"
        "    annotations: {{autoscaling.knative.dev/min-scale: '0'}}\n"
    )
    spec.write_text(
        "apiVersion: knflow.dev/v1alpha1\nkind: Pipeline\n"
        "metadata: {name: t, namespace: t}\nservices:\n"
        + half.format(x="b", extra="")
        + half.format(x="a", extra=", next: resnet-b")
    )
    out = cli(
        "autoscale",
        "collect",
        "--start",
        "--spec",
        str(spec),
        "--targets",
        "2,4",
        "--traffic",
        "1",
        "--link",
        "clear",
        "--link",
        "slow:latency=0.2",
        "--seconds",
        "1.5",
        "--warmup",
        "0",
        "--image-size",
        "32",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[4/4] link=slow target=4 traffic=1" in out.stdout
    path = data_dir / ".knflow" / "autoscale" / "sweep.csv"
    rows = list(csv.DictReader(path.open()))
    assert [(r["target"], r["link"]) for r in rows] == [
        ("2", "clear"),
        ("2", "slow"),
        ("4", "clear"),
        ("4", "slow"),
    ]
    assert all(float(r["throughput"]) > 0 and int(r["errors"]) == 0 for r in rows)
    # the emulated link's 200 ms shows in every request of the slow cells
    assert all(float(r["p50_ms"]) >= 200 for r in rows if r["link"] == "slow")
    assert path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
