"""Composable wrappers around any ChatModel: retry with backoff, call limit (Concordia style)."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Sequence

from mfmdp.llm.base import ChatModelBase, Completion, Message, bounded_map
from mfmdp.llm.errors import CallLimitExceeded, TransientLLMError

log = logging.getLogger(__name__)


class _Wrapper(ChatModelBase):
    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_concurrency = getattr(inner, "max_concurrency", 4)

    def __getattr__(self, item):  # expose backend extras (e.g. supports_logprobs) through wrappers
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    def complete_batch(self, batch: Sequence[Sequence[Message]], **kw) -> list[str]:
        # Per-item calls so that one failed item is retried/counted alone, not the whole batch.
        return bounded_map(lambda m: self.complete(m, **kw), batch, self.max_concurrency)


class RetryingModel(_Wrapper):
    """Retries transient failures (429, 5xx, timeouts) with exponential backoff and full jitter.

    The wait before retry k (0-based) is uniform in [0, min(max_delay, base_delay * 2**k)], or the
    server's Retry-After when it sent one; after `max_retries` retries the last error propagates."""

    def __init__(
        self,
        inner,
        max_retries: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rng = random.Random(seed)
        self._sleep = sleep
        self.retries = 0  # total retries made, for logs and tests

    def _delay(self, attempt: int, err: TransientLLMError) -> float:
        if err.retry_after is not None:
            return min(self.max_delay, err.retry_after)
        return self._rng.uniform(0.0, min(self.max_delay, self.base_delay * 2**attempt))

    def _call(self, fn):
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except TransientLLMError as err:
                if attempt == self.max_retries:
                    raise
                delay = self._delay(attempt, err)
                self.retries += 1
                log.warning("LLM call failed (%s); retry %d/%d in %.2fs", err, attempt + 1,
                            self.max_retries, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def complete(self, messages: Sequence[Message], **kw) -> str:
        return self._call(lambda: self.inner.complete(messages, **kw))

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        return self._call(lambda: self.inner.complete_full(messages, **kw))

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        return self._call(lambda: self.inner.sample(messages, n, **kw))


class CallLimitModel(_Wrapper):
    """Raises CallLimitExceeded once `max_calls` requests have been made (thread-safe)."""

    def __init__(self, inner, max_calls: int) -> None:
        super().__init__(inner)
        self.max_calls = max_calls
        self.calls = 0
        self._lock = threading.Lock()

    def _charge(self, k: int = 1) -> None:
        with self._lock:
            if self.calls + k > self.max_calls:
                raise CallLimitExceeded(
                    f"LLM call limit reached ({self.calls}/{self.max_calls} calls made); raise "
                    "max_calls if this run really needs more"
                )
            self.calls += k

    def complete(self, messages: Sequence[Message], **kw) -> str:
        self._charge()
        return self.inner.complete(messages, **kw)

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        self._charge()
        return self.inner.complete_full(messages, **kw)

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        self._charge(1 if getattr(self.inner, "native_n", False) else n)
        return self.inner.sample(messages, n, **kw)
