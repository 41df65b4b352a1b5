"""``sentibench serve``: the real server (uvicorn, a subprocess on a free 127.0.0.1 port)
around real saved runs (a tiny encoder fine-tuned by train-hf, a logistic regression), over
HTTP; its page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentibench.cli import main
from sentibench.serve.predict import predict_proba
from tests.helpers import cli_error, train_tiny_encoder_run
from tests.postgres import free_port


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A tiny encoder run and a logistic-regression run on texts told by their first word."""
    base = tmp_path_factory.mktemp("serve")
    encoder, data = train_tiny_encoder_run(base)
    logreg = base / "logreg"
    assert main(["train-logreg", "--data-dir", str(data), "--out", str(logreg)]) == 0
    return encoder, logreg, pd.read_csv(data / "test.csv")["text"].tolist()


class Server:
    """``sentibench serve`` in a subprocess; stopped with SIGTERM, which must exit 0."""

    def __init__(self, run_dirs: list[Path], *flags: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sentibench", "serve", *map(str, run_dirs),
             "--port", str(self.port), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.process.stdout.read()}")
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the server did not answer /health within 120 s")

    def call(self, method: str, path: str, body: bytes | dict | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw, status, head = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            raw, status, head = error.read(), error.code, error.headers
        head = {k.lower(): v for k, v in head.items()}
        try:
            return status, json.loads(raw), head
        except ValueError:
            return status, {"text": raw.decode()}, head

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, output
        return output


@pytest.fixture(scope="module")
def server(runs):
    encoder, logreg, _ = runs
    s = Server([encoder, logreg], "--max-texts", "32", "--max-wait-ms", "30")
    yield s
    s.stop()


def test_answers_equal_predicts_in_order(server, runs):
    encoder, logreg, texts = runs
    for name, run in (("encoder", encoder), ("logreg", logreg)):
        status, body, _ = server.call("POST", f"/models/{name}/predict", {"texts": texts})
        assert status == 200 and body["model"] == name
        want = predict_proba(run, texts)
        labels = json.loads((run / "results.json").read_text())["labels"]
        assert [r["label"] for r in body["results"]] == [labels[i] for i in want.argmax(1)]
        got = np.array([[r["probabilities"][k] for k in labels] for r in body["results"]])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert all(r["probability"] == max(r["probabilities"].values())
                   for r in body["results"])
    status, body, _ = server.call("POST", "/predict", {"text": texts[0]})
    assert status == 200 and body["model"] == "encoder" and len(body["results"]) == 1


def test_concurrent_requests_are_scored_in_shared_batches(server, runs):
    texts = runs[2][:16]
    before = _metric(server, "sentibench_batch_texts_count")
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: server.call("POST", "/models/encoder/predict",
                                                      {"text": t}), texts))
    assert all(status == 200 for status, _, _ in answers)
    alone = [server.call("POST", "/models/encoder/predict", {"text": t})[1] for t in texts]
    assert [a[1]["results"] for a in answers] == [b["results"] for b in alone] or all(
        a[1]["results"][0]["label"] == b["results"][0]["label"]
        for a, b in zip(answers, alone, strict=True))
    batches = _metric(server, "sentibench_batch_texts_count") - before - len(texts)
    assert batches < len(texts), "16 concurrent texts were never scored together"


def _metric(server: Server, name: str) -> float:
    status, body, _ = server.call("GET", "/metrics")
    assert status == 200
    match = re.search(rf"^{name} ([\d.e+]+)$", body["text"], re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("body,status,message", [
    (b"{not json", 400, "not JSON"),
    ({"texts": "one string"}, 422, "non-empty list"),
    ({"texts": ["fine", 3]}, 422, "text 1 is int"),
    ({"text": "   "}, 422, "text 0 is empty"),
    ({"text": "a", "texts": ["b"]}, 422, 'send {"text"'),
    ({"texts": ["good"] * 33}, 413, "at most 32 per request"),
    ({"text": "good " * 20_001}, 413, "at most 100000"),
])
def test_bad_requests_are_4xx_with_a_message_and_the_server_keeps_serving(server, body,
                                                                           status, message):
    got, answer, _ = server.call("POST", "/predict", body)
    assert got == status and message in answer["error"]
    assert server.call("POST", "/predict", {"text": "good so the"})[0] == 200


def test_health_ready_info_and_unknown_model(server, runs):
    assert server.call("GET", "/health")[:2] == (200, {"status": "ok"})
    assert server.call("GET", "/ready")[1] == {"status": "ready",
                                               "models": ["encoder", "logreg"]}
    status, info, _ = server.call("GET", "/info")
    assert status == 200 and [m["name"] for m in info["models"]] == ["encoder", "logreg"]
    test = info["models"][0]["test"]
    low, high = test["accuracy_interval_95"]
    assert test["rows"] == 24 and low <= test["accuracy"] <= high
    assert info["models"][0]["labels"] == ["negative", "positive"] or info["models"][0]["labels"]
    assert "torch" in info["versions"]
    status, body, _ = server.call("POST", "/models/nope/predict", {"text": "good"})
    assert status == 404 and "encoder, logreg" in body["error"]


def test_api_key_queue_limit_and_timeout(runs):
    """Another server: a key (from the environment), a queue of 1 text, a 10 ms timeout
    shorter than its 200 ms batching wait."""
    s = Server([runs[1]], "--max-queue", "1", "--timeout-s", "0.01", "--max-wait-ms", "200",
               env={"SENTIBENCH_API_KEY": "s3cret"})
    try:
        assert s.call("GET", "/health")[0] == 200  # open
        assert s.call("GET", "/info")[0] == 401
        key = {"Authorization": "Bearer s3cret"}
        assert s.call("GET", "/info", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.call("GET", "/info", headers=key)[0] == 200
        status, body, head = s.call("POST", "/predict", {"texts": ["good", "bad"]},
                                    headers=key)
        assert status == 503 and head.get("retry-after") == "1"
        status, body, _ = s.call("POST", "/predict", {"text": "good"}, headers=key)
        assert status == 504 and "0.01 s" in body["error"]
    finally:
        s.stop()


def test_a_bad_run_directory_is_one_line_before_anything_listens(tmp_path, capsys):
    message = cli_error(capsys, ["serve", str(tmp_path / "missing"), "--port", "0"])
    assert "missing" in message


def test_the_page_labels_a_typed_review_in_chromium(server, tmp_path):
    """Type a review, submit from the keyboard (Ctrl+Enter), read the label and the bars."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chrome

    with chrome(720) as driver:
        driver.get(server.url + "/")
        WebDriverWait(driver, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
        box = driver.find_element(By.ID, "text")
        box.send_keys("good so the a the so")
        box.send_keys(Keys.CONTROL, Keys.ENTER)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "label").text)
        label = driver.find_element(By.ID, "label").text
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        # the widest and the narrowest percentages still leave every bar the same length
        driver.execute_script("const s = document.querySelectorAll('#bars .bar span:last-child');"
                              "s[0].textContent = '100.0 %'; s[1].textContent = '0.0 %';")
        tracks = {(t.rect["x"], t.rect["width"])
                  for t in driver.find_elements(By.CSS_SELECTOR, "#bars .track")}
        driver.save_screenshot(str(tmp_path / "serve-page.png"))
    want = server.call("POST", "/predict", {"text": "good so the a the so"})[1]
    assert label == want["results"][0]["label"] and len(bars) == 2
    assert len(tracks) == 1  # every class's bar starts and ends at the same place
    assert (tmp_path / "serve-page.png").stat().st_size > 1000


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """A declared Content-Length over --max-body-kb: 413 at once, the body never sent."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 3000000\r\n\r\n")
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "at most 2048 KiB" in json.loads(body)["error"]
    assert server.call("POST", "/predict", {"text": "good so the"})[0] == 200


def test_sigterm_during_requests_finishes_them_then_exits_0(runs):
    """Requests in flight when SIGTERM arrives (held 1 s by the batching wait) are answered;
    the process then exits 0."""
    s = Server([runs[1]], "--max-wait-ms", "1000")
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(s.call, "POST", "/predict", {"text": t}) for t in runs[2][:4]]
        time.sleep(0.4)
        s.process.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=60) for f in pending]
    s.stop()
    assert [status for status, _, _ in answers] == [200] * 4
