"""The web page in headless Debian chromium (Playwright): bad input shows a clear message; a run
started from the page shows trials as they finish; deploying the best shows the endpoint URL.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from knative.embedded import Platform
from knative.instance import Instance
from knative.spec import load_spec
from knative.ui.server import UIServer
from tests.conftest import ARTIFACTS
from tests.tuning_support import available_spec

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
    ),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A real platform (broker, tune/train/export/builder/predict replicas) and the page."""
    tmp = tmp_path_factory.mktemp("browser")
    data = tmp / "data"
    data.mkdir()
    spec = available_spec(tmp / "knflow.yaml", builder={"smoke_min_accuracy": 0.2})
    platform = Platform(load_spec(str(spec)), data, tick=0.5).start()
    server = UIServer(Instance.load(data), data).start()
    try:
        yield SimpleNamespace(url=server.url, data=data)
    finally:
        server.stop()
        platform.stop(drain=5)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    page.goto(site.url)
    yield page
    page.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"tuning-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_bad_input_on_the_page_says_why(page, tmp_path):
    page.fill("#request", "learning rate from 0.1 to 0.0001")
    page.click("#start")
    page.wait_for_selector("#form-error:has-text('range is reversed')")
    assert "write low=0.0001, high=0.1" in page.inner_text("#form-error")
    shot(page, "reversed-range")

    page.fill("#request", "")
    page.fill("#space", '{"lr": {"type": "gaussian", "low": 0, "high": 1}}')
    page.click("#start")
    page.wait_for_selector("#form-error:has-text('unknown type')")
    assert "use one of: float, int, categorical" in page.inner_text("#form-error")

    empty = tmp_path / "train.py"
    empty.write_text("")
    page.fill("#space", "")
    page.fill("#request", "lr from 1e-3 to 1e-1")
    page.set_input_files("#code", str(empty))
    page.click("#start")
    page.wait_for_selector("#form-error:has-text('is empty')")
    shot(page, "empty-upload")
    assert page.is_hidden("#run")  # nothing started


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_start_watch_and_deploy_from_the_page(page):
    page.fill("#request", "learning rate from 0.01 to 0.06, batch size 32 or 64")
    page.fill("#max_trials", "4")
    page.fill("#parallel_trials", "2")
    page.fill("#epochs", "1")
    page.fill("#limit", "500")
    page.click("#start")
    page.wait_for_selector("#run:not([hidden])")
    page.wait_for_selector("#trials tbody tr.state-complete", timeout=180_000)
    shot(page, "trials-running")
    page.wait_for_selector("#run-status:has-text('completed')", timeout=480_000)
    assert page.locator("#trials tbody tr").count() >= 4
    assert page.locator("#plot circle").count() >= 4
    values = [float(v) for v in page.locator("#top tbody tr td:nth-child(3)").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) >= 1
    assert page.locator("#services tbody tr").count() >= 3  # the pipeline's services are listed
    page.locator("#top tbody tr button.deploy").first.click()
    page.wait_for_selector("#endpoint, #deployment .error", timeout=300_000)
    shot(page, "deployed")
    assert page.locator("#endpoint").count() == 1, page.inner_text("#deployment")
    url = page.get_attribute("#endpoint", "href")
    assert url.endswith("/v2/models/digits/infer")
    assert "The model you asked for is served at" in page.inner_text("#deployment")
    started = time.monotonic()
    import requests

    meta = requests.get(url.removesuffix("/infer"), timeout=10)
    assert meta.status_code == 200 and time.monotonic() - started < 10


def test_pipeline_panel_shows_services_events_and_candidates(page, site):
    """Candidates are whatever the audio pipeline wrote to outputs/: a spectrogram image and a
    clip per candidate; here two real ones are written the same way (PNG + WAV files)."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    outputs = site.data / "outputs" / "talk"
    outputs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((64, 128)) * 255).astype("uint8")).save(
            outputs / f"candidate-{i}.png"
        )
        sf.write(
            outputs / f"candidate-{i}.wav", np.sin(np.arange(8000) * 0.05 * (i + 1)) * 0.2, 8000
        )
    page.reload()
    page.wait_for_selector("#candidates .candidate img", timeout=20_000)
    assert page.locator("#candidates .candidate").count() == 2
    assert page.locator("#candidates audio").count() == 2
    src = page.get_attribute("#candidates audio", "src")
    assert page.evaluate(f"fetch('{src}').then(r => r.headers.get('content-type'))").startswith(
        "audio/"
    )
    page.wait_for_selector("#services tbody tr", timeout=20_000)
    assert "tune" in page.inner_text("#services")
    shot(page, "pipeline")
