"""Dynamic batching: texts from concurrent requests scored together.

Each model has one queue and one task that takes the first waiting text, waits up to
``max_wait`` for more (never past ``max_batch``), and scores the batch on a worker thread,
so the event loop keeps accepting requests meanwhile. Scoring itself sorts by length
(``engine.inference``), so mixing requests of different lengths costs little padding. A
request whose client gave up (its timeout) is dropped from a batch not yet scored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class QueueFull(Exception):
    """More texts are waiting than the server accepts."""


class Batcher:
    def __init__(self, score: Callable[[list[str]], np.ndarray], max_batch: int,
                 max_wait_s: float, max_queue: int,
                 on_batch: Callable[[int], None] = lambda size: None) -> None:
        self.score, self.max_batch, self.max_wait_s = score, max_batch, max_wait_s
        self.max_queue, self.on_batch = max_queue, on_batch
        self.queue: asyncio.Queue[tuple[str, asyncio.Future]] = asyncio.Queue()
        self.waiting = 0  # texts queued, not yet taken into a batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's probabilities, in order, once its batch is scored."""
        if self.waiting + len(texts) > self.max_queue:
            raise QueueFull
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        for text, future in zip(texts, futures, strict=True):
            self.queue.put_nowait((text, future))
        self.waiting += len(texts)
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:  # timed out: its texts are skipped when taken
            for future in futures:
                future.cancel()
            raise

    async def _next_batch(self) -> list[tuple[str, asyncio.Future]]:
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        self.waiting -= len(batch)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [(t, f) for t, f in await self._next_batch() if not f.done()]
            if not batch:
                continue
            self.on_batch(len(batch))
            try:
                probs = await loop.run_in_executor(self.executor, self.score,
                                                   [text for text, _ in batch])
            except Exception as error:  # every waiting request learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), row in zip(batch, probs, strict=True):
                if not future.done():
                    future.set_result(row)
