"""The emulated link on its own: shared settings, bandwidth, latency and the transfer cap."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions.split.link import Link, LinkError, LinkSettings, parse_link


def _parallel(link: Link, n: int, nbytes: int, hold: float = 0.0) -> float:
    def one(_):
        with link.transfer(nbytes):
            time.sleep(hold)

    began = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    return time.monotonic() - began


def test_clear_link_adds_nothing(tmp_path):
    assert _parallel(Link(tmp_path), 4, 10_000_000) < 0.2


def test_bandwidth_is_shared_by_concurrent_transfers(tmp_path):
    link = Link(tmp_path, LinkSettings("thin", bandwidth=1_000_000))
    # four 50 kB transfers over 1 MB/s: 0.2 s in all, however many run at once
    assert _parallel(link, 4, 50_000) >= 0.19


def test_transfer_cap_serialises_across_link_objects(tmp_path):
    Link(tmp_path).update(LinkSettings("one-lane", max_transfers=1))
    replicas = [Link(tmp_path), Link(tmp_path)]  # two replicas sharing the link's directory

    def one(i):
        with replicas[i % 2].transfer(1):
            time.sleep(0.1)

    began = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(4)))
    assert time.monotonic() - began >= 0.39
    assert replicas[0].stats.transfers + replicas[1].stats.transfers == 4


def test_settings_change_at_run_time_for_every_replica(tmp_path):
    a, b = Link(tmp_path), Link(tmp_path)
    assert b.settings.name == "clear"
    a.update(LinkSettings("slow", latency=0.05))
    assert b.settings.latency == 0.05
    began = time.monotonic()
    with b.transfer(10):
        pass
    assert time.monotonic() - began >= 0.05


def test_parse_link_forms():
    assert parse_link("congested").max_transfers == 1
    custom = parse_link("wan:bw=2e6,lat=0.03,max=2")
    assert (custom.name, custom.bandwidth, custom.latency, custom.max_transfers) == (
        "wan",
        2e6,
        0.03,
        2,
    )
    for bad in ("nowhere", "x:bw=fast", "x:latency", "x:max=0", "x:colour=1"):
        with pytest.raises(LinkError):
            parse_link(bad)
