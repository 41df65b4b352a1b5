"""``sentibench serve`` under load, against the server a user would write and against
offline scoring, on the same saved encoder run and the same test reviews.

Three ways of labelling the first ``--texts`` reviews of ``<data-dir>/test.csv``:

* offline: :func:`sentibench.serve.predict.predict_proba` on all of them at once, in
  process (what ``sentibench predict --file`` runs, without its start-up and printing);
* serve: ``sentibench serve RUN`` in its own process; ``--clients`` concurrent clients on
  127.0.0.1 each send one review per request until every review is labelled;
* hand-written: a FastAPI app calling ``transformers.pipeline`` once per request (the
  server a Hugging Face user writes), on uvicorn in its own process, same clients.

Printed per round: texts/s and p50/p95/p99 request latency of each server, the offline
rate, and the ratios (serve over offline, serve over hand-written); whether serve's labels
equal offline's; then one client sending ``--single`` reviews one after another, its p50
and p95 latency against the p50 and p95 of scoring each of the same reviews alone in
process. Every client keeps one connection open (as ``requests.Session`` does). The
in-process side runs with the sentibench command's own process settings. ``--rounds R``
repeats everything and reports the medians. ``--soak N`` sends N requests mixing good and
malformed bodies to serve and reports 5xx count, resident-memory growth and whether every
good answer equals offline's label.

    python benchmarks/serve_load.py --run runs/minilm --data-dir data/imdb --texts 1000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi import Request  # module level: FastAPI resolves the handler's annotation here

HERE = Path(__file__).resolve()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LOCAL = threading.local()


def _post(url: str, body: bytes, timeout: float = 120) -> tuple[int, bytes, float]:
    """One POST on this thread's kept-alive connection (as a ``requests.Session`` or an
    ``httpx.Client`` would hold one), reconnecting where the server closed it."""
    parts = urllib.parse.urlsplit(url)
    for attempt in (0, 1):
        conn = getattr(_LOCAL, "conn", None)
        if conn is None or getattr(_LOCAL, "netloc", None) != parts.netloc:
            conn = _LOCAL.conn = http.client.HTTPConnection(parts.hostname, parts.port,
                                                             timeout=timeout)
            _LOCAL.netloc = parts.netloc
        t0 = time.perf_counter()
        try:
            conn.request("POST", parts.path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read(), time.perf_counter() - t0
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            _LOCAL.conn = None
            if attempt:
                raise
    raise AssertionError("unreachable")


class Process:
    """A server subprocess on a free port, stopped (SIGTERM) on exit."""

    def __init__(self, argv: list[str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited: {' '.join(argv)}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"no answer from {' '.join(argv)}")

    def rss(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def load(url: str, texts: list[str], clients: int) -> dict:
    """Every text once, one per request, from ``clients`` threads; wall, latencies, labels."""
    bodies = [json.dumps({"text": t}).encode() for t in texts]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda b: _post(url, b), bodies))
    wall = time.perf_counter() - t0
    bad = [s for s, _, _ in answers if s != 200]
    if bad:
        raise SystemExit(f"{url}: {len(bad)} requests failed (status {bad[0]})")
    latency = np.array([s for _, _, s in answers])
    labels = [_label(raw) for _, raw, _ in answers]
    return {"rate": len(texts) / wall, "p50": float(np.percentile(latency, 50)),
            "p95": float(np.percentile(latency, 95)),
            "p99": float(np.percentile(latency, 99)), "labels": labels}


def _label(raw: bytes) -> str:
    body = json.loads(raw)
    if "results" in body:  # sentibench serve
        return body["results"][0]["label"]
    return body["label"]  # the hand-written server


def handwritten(run: Path, port: int) -> None:
    """The server a user writes: FastAPI, a pipeline, one call per request."""
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    from sentibench.run.results import read_results

    result = read_results(run)
    classify = pipeline("text-classification", model=str(run), device=-1, truncation=True,
                        max_length=int(result.config.get("max_length", 256)))
    names = {f"LABEL_{i}": name for i, name in enumerate(result.labels)}
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        text = (await request.json())["text"]
        out = classify(text)[0]
        return {"label": names.get(out["label"], out["label"]), "score": out["score"]}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def offline(run: Path, texts: list[str], singles: list[str]
            ) -> tuple[float, list[str], np.ndarray]:
    """Texts/s of in-process scoring, its labels, and the time to score each of
    ``singles`` alone (one call per text, in order), all with sentibench's own process
    settings (:func:`sentibench.core.runtime.configure`, made before torch loads)."""
    from sentibench.run.results import read_results
    from sentibench.serve.loaded import load_model

    labels = read_results(run).labels
    model = load_model(run, "cpu")
    model.proba(texts[:8])  # warm-up
    t0 = time.perf_counter()
    probs = model.proba(texts)
    rate = len(texts) / (time.perf_counter() - t0)
    one = []
    for text in singles:
        t0 = time.perf_counter()
        model.proba([text])
        one.append(time.perf_counter() - t0)
    return rate, [labels[i] for i in probs.argmax(1)], np.array(one)


def soak(url: str, texts: list[str], want: list[str], n: int, server: Process) -> dict:
    """``n`` requests, one in five malformed (bad JSON, empty, wrong type), 8 clients."""
    bad = [b"{oops", json.dumps({"text": " "}).encode(), json.dumps({"texts": [1]}).encode(),
           json.dumps({"txt": "x"}).encode()]
    jobs = [(bad[i % len(bad)], None) if i % 5 == 4 else
            (json.dumps({"text": texts[i % len(texts)]}).encode(), want[i % len(texts)])
            for i in range(n)]
    before = server.rss()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: (_post(url, job[0]), job[1]), jobs))
    after = server.rss()
    five = sum(1 for (status, _, _), _ in answers if status >= 500)
    wrong = sum(1 for (status, raw, _), label in answers
                if label is not None and (status != 200 or _label(raw) != label))
    client_errors = sum(1 for (status, _, _), label in answers
                        if label is None and 400 <= status < 500)
    return {"requests": n, "5xx": five, "4xx for malformed": client_errors,
            "malformed": sum(1 for _, label in answers if label is None),
            "good answers differing from offline": wrong,
            "rss_growth": (after - before) / before if before else float("nan")}


def main(argv: list[str] | None = None) -> None:
    from sentibench.core import runtime

    runtime.configure()  # as the sentibench command does, before anything imports torch
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a saved encoder run")
    p.add_argument("--data-dir", type=Path, required=True, help="prepared data (test.csv)")
    p.add_argument("--texts", type=int, default=1000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--soak", type=int, default=0, help="requests of the soak (0: none)")
    p.add_argument("--single", type=int, default=200,
                   help="texts sent by the lone client, and scored alone in process")
    p.add_argument("--handwritten-server", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.handwritten_server is not None:
        return handwritten(args.run, args.handwritten_server)
    texts = pd.read_csv(args.data_dir / "test.csv")["text"].astype(str).tolist()[:args.texts]
    env_python = sys.executable
    rounds = []
    for r in range(args.rounds):
        rate, want, one_text = offline(args.run, texts, texts[:args.single])
        port = _free_port()
        with Process([env_python, "-m", "sentibench", "serve", str(args.run), "--port",
                      str(port)], port) as server:
            ours = load(server.url + "/predict", texts, args.clients)
            single = load(server.url + "/predict", texts[:args.single], 1)
            if args.soak and r == args.rounds - 1:
                print("soak:", json.dumps(soak(server.url + "/predict", texts, want,
                                                  args.soak, server)), flush=True)
        port = _free_port()
        with Process([env_python, str(HERE), "--run", str(args.run), "--data-dir",
                      str(args.data_dir), "--handwritten-server", str(port)], port) as hand:
            theirs = load(hand.url + "/predict", texts, args.clients)
        same = sum(a == b for a, b in zip(ours["labels"], want, strict=True))
        same_hand = sum(a == b for a, b in zip(theirs["labels"], want, strict=True))
        alone = {q: float(np.percentile(one_text, q)) for q in (50, 95)}
        rounds.append({"offline": rate, "serve": ours["rate"], "hand": theirs["rate"],
                       "p50_one_client": single["p50"], "p95_one_client": single["p95"],
                       "p50_in_process": alone[50], "p95_in_process": alone[95]})
        print(f"round {r + 1}: offline {rate:7.1f} texts/s | serve {ours['rate']:7.1f} texts/s "
              f"(p50 {1e3 * ours['p50']:.0f} / p95 {1e3 * ours['p95']:.0f} / p99 "
              f"{1e3 * ours['p99']:.0f} ms) | hand-written {theirs['rate']:7.1f} texts/s "
              f"(p50 {1e3 * theirs['p50']:.0f} / p95 {1e3 * theirs['p95']:.0f} / p99 "
              f"{1e3 * theirs['p99']:.0f} ms) | labels = offline: serve {same}/{len(texts)}, "
              f"hand-written {same_hand}/{len(texts)} | one client p50 / p95 "
              f"{1e3 * single['p50']:.1f} / {1e3 * single['p95']:.1f} ms vs one text in "
              f"process {1e3 * alone[50]:.1f} / {1e3 * alone[95]:.1f} ms", flush=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"medians of {len(rounds)} rounds, {args.clients} clients, {len(texts)} texts, "
          f"{os.cpu_count()} CPUs: serve / offline {med['serve'] / med['offline']:.2f} "
          f"(goal >= 0.70), serve / hand-written {med['serve'] / med['hand']:.2f}x "
          f"(goal >= 3x), one client / one text in process: p95 "
          f"{med['p95_one_client'] / med['p95_in_process']:.2f} (goal <= 1.5), p50 "
          f"{med['p50_one_client'] / med['p50_in_process']:.2f}")
    return None


if __name__ == "__main__":
    sys.exit(main())
