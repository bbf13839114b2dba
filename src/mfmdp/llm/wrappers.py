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
        self._warned = False  # the first retry is a warning, later ones debug lines (a dead server: one line)
        self._warn_lock = threading.Lock()

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
                with self._warn_lock:
                    self.retries += 1
                    level, self._warned = (logging.DEBUG if self._warned else logging.WARNING), True
                log.log(level, "LLM call failed (%s); retry %d/%d in %.2fs%s", err, attempt + 1, self.max_retries,
                        delay, "" if level == logging.DEBUG else " (further retries are logged at debug level)")
                self._sleep(delay)
        raise AssertionError("unreachable")

    def complete(self, messages: Sequence[Message], **kw) -> str:
        return self._call(lambda: self.inner.complete(messages, **kw))

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        return self._call(lambda: self.inner.complete_full(messages, **kw))

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        return self._call(lambda: self.inner.sample(messages, n, **kw))


class CallLimitModel(_Wrapper):
    """A spending budget: raises CallLimitExceeded *before* a request that could take the run past
    `max_calls` requests or `max_tokens` tokens (None: no limit; thread-safe; every attempt counts,
    retries included). Tokens are reserved at an upper bound (`token_bound`) when a request starts
    and settled to the server's reported usage when it returns; a request that fails costs no tokens."""

    def __init__(self, inner, max_calls: int | None = None, max_tokens: int | None = None) -> None:
        super().__init__(inner)
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.calls = 0
        self.tokens = 0
        self._reserved = 0
        self._lock = threading.Lock()

    def _charge(self, k: int, estimate: int) -> None:
        with self._lock:
            if self.max_calls is not None and self.calls + k > self.max_calls:
                raise CallLimitExceeded(
                    f"LLM call limit reached ({self.calls}/{self.max_calls} calls made); raise "
                    "max_calls if this run really needs more"
                )
            if self.max_tokens is not None and self.tokens + self._reserved + estimate > self.max_tokens:
                raise CallLimitExceeded(
                    f"LLM token budget reached ({self.tokens}/{self.max_tokens} tokens used, the next request "
                    f"may need up to {estimate}); raise max_total_tokens if this run really needs more"
                )
            self.calls += k
            self._reserved += estimate

    def _settle(self, estimate: int, used: int | None) -> None:
        with self._lock:
            self._reserved -= estimate
            self.tokens += used

    def complete(self, messages: Sequence[Message], **kw) -> str:
        return self.complete_full(messages, **kw).text

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        estimate = token_bound(messages, kw)
        self._charge(1, estimate)
        used = 0
        try:
            out = self.inner.complete_full(messages, **kw)
            used = usage_tokens(out, estimate)
        finally:
            self._settle(estimate, used)
        return out

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        k = 1 if getattr(self.inner, "native_n", False) else n
        estimate = n * token_bound(messages, kw)
        self._charge(k, estimate)
        used = 0
        try:
            out = self.inner.sample(messages, n, **kw)
            used = estimate  # per-sample usage is not reported: charge the bound
        finally:
            self._settle(estimate, used)
        return out


DEFAULT_COMPLETION_TOKENS = 1024  # the completion's bound when a request sets no max_tokens


def token_bound(messages: Sequence[Message], kw: dict) -> int:
    """An upper bound on a request's tokens: byte-level tokenisers make at most one token per UTF-8
    byte, plus a few per message for the chat template, plus the completion's max_tokens."""
    prompt = sum(len(str(m.get("content", "")).encode("utf-8")) + 8 for m in messages)
    return prompt + int(kw.get("max_tokens") or DEFAULT_COMPLETION_TOKENS)


def usage_tokens(completion: Completion, default: int) -> int:
    """Total tokens the server reported for a completion, or `default` when it reported none."""
    usage = (completion.extra or {}).get("usage") or {}
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return int(total) if isinstance(total, (int, float)) else default
