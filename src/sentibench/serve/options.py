"""``sentibench serve``'s options, declared once (the command line and docs/cli.md are
generated from them). Light on purpose: ``sentibench --help`` imports this module."""

from __future__ import annotations

from dataclasses import dataclass

from sentibench.core.options import option, validate

API_KEY_ENV = "SENTIBENCH_API_KEY"


@dataclass
class ServeArgs:
    """How the server listens, batches and limits requests."""

    host: str = option("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = option(8000, "port to listen on (0: any free port, printed at start)",
                       minimum=0)
    device: str = option("cpu", "where the models score: cpu, cuda, cuda:N or mps")
    max_batch: int = option(32, "texts scored together, from one or several requests",
                            above=0)
    max_wait_ms: float = option(0.0, "how long the first waiting text waits for others to "
                                     "fill its batch (0: score what is waiting at once; "
                                     "texts arriving meanwhile form the next batch)",
                                minimum=0)
    max_queue: int = option(1024, "texts waiting to be scored; a request that would pass "
                                  "this gets 503 with Retry-After", above=0)
    max_texts: int = option(256, "texts per request (more: 413)", above=0)
    max_chars: int = option(100_000, "characters per text (more: 413; within the limit a "
                                     "text is truncated as its run was trained)", above=0)
    max_body_kb: int = option(2048, "request body size in KiB (more: 413)", above=0)
    timeout_s: float = option(30.0, "seconds a request may wait for its answer (then 504)",
                              above=0)
    access_log: bool = option(False, "log every request (uvicorn's access log)")
    api_key: str | None = option(
        None, f"require 'Authorization: Bearer KEY' on every endpoint but /health and the "
              f"page (default: env {API_KEY_ENV}, else no key)")

    def __post_init__(self) -> None:
        validate(self)
