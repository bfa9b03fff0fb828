"""`knflow upload|ls|get|rm` as a user runs them: real processes, real files, both backends."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import knflow_env, run_cli

pytest_plugins = ["tests.s3server"]


def md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess, words: str) -> None:
    """Exit 1 with exactly one `Error: …` line naming the problem (no traceback)."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert words in lines[0], lines[0]


@pytest.fixture
def talk(tmp_path: Path) -> Path:
    path = tmp_path / "talk one.wav"
    path.write_bytes(b"RIFF" + os.urandom(4096))
    return path


def test_upload_ls_get_rm_round_trip(cli, data_dir, talk, tmp_path):
    out = ok(cli("upload", str(talk), "--create-bucket"))
    assert "Object 'talk one.wav' uploaded to bucket 'uploads'" in out
    assert (data_dir / "uploads" / "talk one.wav").read_bytes() == talk.read_bytes()
    ok(cli("upload", str(talk), "--key", "talks/2024/b.wav"))

    listing = ok(cli("ls", "uploads")).splitlines()
    assert listing[0].split() == ["KEY", "SIZE", "TYPE", "AGE"]
    assert [row.split("   ")[0] for row in listing[1:]] == ["talk one.wav", "talks/2024/b.wav"]
    objects = json.loads(ok(cli("ls", "uploads/talks/", "-o", "json")))
    assert [(o["key"], o["size"], o["etag"]) for o in objects] == [
        ("talks/2024/b.wav", 4100, md5_file(talk))
    ]
    assert "uploads" in ok(cli("ls")).split()

    target = tmp_path / "copy.wav"
    out = ok(cli("get", "uploads/talks/2024/b.wav", "-o", str(target)))
    assert f"to {target}" in out and target.read_bytes() == talk.read_bytes()
    raw = subprocess.run(
        [sys.executable, "-m", "knative", "get", "s3://uploads/talk one.wav", "-o", "-"],
        env=knflow_env(data_dir),
        capture_output=True,
        check=True,
    )
    assert raw.stdout == talk.read_bytes()

    assert "deleted" in ok(cli("rm", "uploads/talk one.wav"))
    assert "deleted" in ok(cli("rm", "uploads/talks/2024/b.wav"))
    assert "No objects found in bucket 'uploads'." in ok(cli("ls", "uploads"))
    log = (data_dir / ".store" / "notifications.jsonl").read_text().splitlines()
    assert [json.loads(line)["eventName"] for line in log] == [
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Put",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:Delete",
    ]


def test_large_transfers_show_progress_on_stderr(cli, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(16 << 20)
    result = cli("upload", str(big), "--create-bucket")
    assert result.returncode == 0 and "100%" in result.stderr and "upload big.bin" in result.stderr
    result = cli("get", "uploads/big.bin", "-o", str(tmp_path / "back.bin"))
    assert result.returncode == 0 and "100%" in result.stderr
    small = cli("get", "uploads/big.bin", "-o", "-")  # stdout downloads never draw a bar
    assert small.stderr == ""


def test_bad_input_is_refused_and_leaves_nothing_behind(cli, data_dir, talk, tmp_path):
    refused(cli("upload", str(talk)), "bucket 'uploads' does not exist")
    assert not (data_dir / "uploads").exists()
    ok(cli("upload", str(talk), "--create-bucket"))
    cases = [
        (("upload", str(tmp_path / "missing.wav")), "cannot read"),
        (("upload", str(tmp_path)), "is a directory"),
        (("upload", str(talk), "--key", "../escape.wav"), "'..' path segment"),
        (("upload", str(talk), "--key", "/abs.wav"), "absolute path"),
        (("upload", str(talk), "--key", "a\tb"), "control character"),
        (("upload", str(talk), "--key", "k" * 1100), "1100 bytes"),
        (("upload", str(talk), "--bucket", "Bad_Bucket"), "lower-case"),
        (("upload", str(talk), "--bucket", ".store"), "reserved"),
        (("get", "uploads/nope.wav"), "'nope.wav' does not exist in bucket 'uploads'"),
        (("get", "uploads"), "names no object"),
        (("get", "uploads/talk one.wav", "-o", str(tmp_path / "no" / "x")), "does not exist"),
        (("rm", "uploads/nope.wav"), "does not exist"),
        (("rm", "uploads/../x"), "'..'"),
        (("ls", "missing-bucket"), "bucket 'missing-bucket' does not exist"),
        (("ls", "--store", "ftp://x"), "unsupported scheme"),
    ]
    for args, words in cases:
        refused(cli(*args), words)
    assert sorted(p.name for p in (data_dir / "uploads").iterdir()) == ["talk one.wav"]
    assert not (tmp_path.parent / "escape.wav").exists()
    assert os.listdir(data_dir / ".store" / "tmp") == []

    keep = tmp_path / "keep.wav"
    keep.write_bytes(b"mine")
    refused(cli("get", "uploads/nope.wav", "-o", str(keep)), "does not exist")
    assert keep.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_store_url_selects_s3_backend(cli, talk, tmp_path, s3_endpoint, monkeypatch):
    store = f"s3://?endpoint={s3_endpoint}&region=us-east-1"
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    out = ok(cli("upload", str(talk), "--bucket", bucket, "--create-bucket", "--store", store))
    assert f"s3://{bucket}/talk one.wav" in out
    monkeypatch.setenv("KNFLOW_STORE", store)  # the environment works as well as --store
    (listed,) = json.loads(ok(cli("ls", bucket, "-o", "json")))
    assert (listed["key"], listed["etag"]) == ("talk one.wav", md5_file(talk))
    ok(cli("get", f"{bucket}/talk one.wav", "-o", str(tmp_path / "back.wav")))
    assert (tmp_path / "back.wav").read_bytes() == talk.read_bytes()
    ok(cli("rm", f"{bucket}/talk one.wav"))
    refused(cli("get", f"{bucket}/talk one.wav"), "does not exist")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    refused(cli("ls"), "AWS_ACCESS_KEY_ID")


PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, file=sys.stderr)
"""


@pytest.mark.slow
def test_one_gib_upload_and_download_keep_memory_flat(data_dir, tmp_path):
    """1 GiB through `knflow upload` and `knflow get`: each process peaks under 200 MB RSS."""
    size = 1 << 30
    src = tmp_path / "huge.bin"
    with open(src, "wb") as f:  # sparse: created instantly, reads back as zeros
        f.truncate(size)
    part = hashlib.md5(bytes(8 << 20)).digest()  # S3 multipart etag: 128 parts of 8 MiB
    etag = f"{hashlib.md5(part * 128).hexdigest()}-128"

    def measured(*args: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "knative", *args],
            env=knflow_env(data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        peak_kib, code = result.stderr.splitlines()[-1].split()
        assert code == "0", result.stderr
        return int(peak_kib) * 1024

    upload_peak = measured("upload", str(src), "--create-bucket")
    (listed,) = json.loads(run_cli("ls", "uploads", "-o", "json", data=data_dir).stdout)
    assert (listed["size"], listed["etag"]) == (size, etag)
    out = tmp_path / "back.bin"
    download_peak = measured("get", "uploads/huge.bin", "-o", str(out))
    assert out.stat().st_size == size
    assert upload_peak < 200e6, f"upload peaked at {upload_peak / 1e6:.0f} MB"
    assert download_peak < 200e6, f"download peaked at {download_peak / 1e6:.0f} MB"
