"""Start ``sentibench serve``: load every run (a bad one is an error before anything
listens), then run the app on uvicorn until Ctrl-C or SIGTERM, which stop accepting,
finish the requests in flight and exit 0."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import PredictConfig
from sentibench.serve.options import API_KEY_ENV, ServeArgs


def run_server(run_dirs: list[Path], args: ServeArgs,
               settings: PredictConfig | None = None) -> None:
    import uvicorn

    from sentibench.serve.app import create_app
    from sentibench.serve.loaded import load_model

    if not run_dirs:
        raise SentibenchError("name at least one run directory to serve")
    names = [Path(d).name for d in run_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SentibenchError(f"two runs named {twice[0]!r}: each is served at "
                              "/models/<its directory's name>/predict")
    models = [load_model(Path(d), args.device, settings) for d in run_dirs]
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    app = create_app(models, args, api_key)
    print(f"Serving {', '.join(names)} on http://{args.host}:{args.port}/ "
          f"(POST /predict{', /models/<name>/predict' if len(models) > 1 else ''}; "
          f"{'API key required' if api_key else 'no API key'})", flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                            access_log=args.access_log,
                            timeout_graceful_shutdown=int(args.timeout_s) + 1)
    _server_class()(config).run()


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that Ctrl-C or SIGTERM, after the graceful shutdown, end
        the process normally (exit 0) instead of being raised again."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            stops = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    return Server
