"""`knflow split info` and `knflow autoscale train|show|apply` as a user runs them."""

from __future__ import annotations

import json

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
