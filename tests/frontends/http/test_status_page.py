"""The status page at ``/``: its snapshot, its switch, and the page itself in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from conftest import EXAMPLES, TEST_REPOSITORY
from serverutil import RunningServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("status_page")
    shutil.copytree(EXAMPLES / "add_sub", root / "add_sub")
    shutil.copytree(TEST_REPOSITORY / "init_fails", root / "init_fails")
    running = RunningServer(
        [root], "--model-control-mode=explicit", "--load-model=add_sub", "--load-model=init_fails",
        "--exit-on-error=false",
    )  # fmt: skip
    yield running
    running.stop()


def infer(server: RunningServer, times: int) -> None:
    client = httpclient.InferenceServerClient(server.http)
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32"), httpclient.InferInput("INPUT1", [4], "FP32")]
    for item in inputs:
        item.set_data_from_numpy(np.ones(4, np.float32))
    for _ in range(times):
        client.infer("add_sub", inputs)


def versions(snapshot: dict, name: str) -> list[dict]:
    return next(model["versions"] for model in snapshot["models"] if model["name"] == name)


def test_snapshot_has_states_reasons_and_counters(server):
    infer(server, 3)
    snapshot = requests.get(f"http://{server.http}/status.json", timeout=5).json()
    (add_sub,) = versions(snapshot, "add_sub")
    assert add_sub["state"] == "READY" and add_sub["version"] == "1"
    assert add_sub["instance_groups"] == [{"name": "add_sub_0", "kind": "KIND_CPU", "count": 1}]
    assert add_sub["success"] >= 3 and add_sub["request_ns"] > 0 and add_sub["pending"] == 0
    (broken,) = versions(snapshot, "init_fails")
    assert broken["state"] == "UNAVAILABLE" and broken["reason"]
    page = requests.get(f"http://{server.http}/", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" in page.text and "http" not in page.text.split("<script>")[1].split("fetch(")[0]


def test_the_page_can_be_switched_off(tmp_path):
    shutil.copytree(EXAMPLES / "add_sub", tmp_path / "add_sub")
    off = RunningServer([tmp_path], "--status-page=false")
    try:
        assert requests.get(f"http://{off.http}/", timeout=5).status_code == 404
        assert requests.get(f"http://{off.http}/status.json", timeout=5).status_code == 404
    finally:
        off.stop()


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    return path


def test_the_page_in_a_browser(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extras")
    executable = chromium()
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"http://{server.http}/")
            add_sub = page.locator('tr[data-model="add_sub"] td.state')
            sync_api.expect(add_sub).to_have_text("READY", timeout=10_000)
            sync_api.expect(page.locator('tr[data-model="init_fails"] td.state')).to_contain_text("UNAVAILABLE")
            deadline = time.monotonic() + 10
            rate = page.locator('tr[data-model="add_sub"] td.num').nth(1)
            while time.monotonic() < deadline:  # live throughput: a number once requests flow
                infer(server, 20)
                if rate.inner_text() not in ("–", "0.0"):
                    break
            assert float(rate.inner_text()) > 0
            page.screenshot(path=str(Path(os.environ.get("STATUS_PAGE_SCREENSHOT", tmp_path / "status.png"))))
            httpclient.InferenceServerClient(server.http).unload_model("add_sub")
            sync_api.expect(add_sub).to_contain_text("UNAVAILABLE", timeout=10_000)
            httpclient.InferenceServerClient(server.http).load_model("add_sub")
            sync_api.expect(add_sub).to_have_text("READY", timeout=10_000)
        finally:
            browser.close()
    assert problems == []
