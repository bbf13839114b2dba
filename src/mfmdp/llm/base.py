"""A tiny chat-model protocol in the style of Concordia's LanguageModel.

Every backend (OpenAI-compatible HTTP, local Hugging Face, deterministic fake) implements
`complete(messages, **kw) -> str`; `complete_batch` and `sample` have generic defaults built on it
(bounded thread-pool concurrency), which backends override when they can batch natively.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, TypeVar, runtime_checkable

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Completion:
    """One generated message with optional token log-probabilities (when the backend gives them)."""

    text: str
    # Per generated token: (token text, logprob, {alternative token text: logprob}).
    tokens: list[tuple[str, float, dict[str, float]]] | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    name: str  # identifies the model for caches and manifests (never contains a secret)

    def complete(self, messages: Sequence[Message], **kw) -> str: ...

    def complete_batch(self, batch: Sequence[Sequence[Message]], **kw) -> list[str]: ...

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]: ...


def user(content: str) -> list[Message]:
    return [{"role": "user", "content": content}]


def bounded_map(fn: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[R]:
    """`[fn(x) for x in items]` on at most `max_workers` threads, results in input order.

    The first exception propagates (after the running calls finish), never swallowed."""
    items = list(items)
    if max_workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        return list(pool.map(fn, items))


class ChatModelBase:
    """Generic `complete_batch` / `sample` on top of a backend's `complete` / `complete_full`."""

    name: str = "chat-model"
    max_concurrency: int = 4

    def complete(self, messages: Sequence[Message], **kw) -> str:
        return self.complete_full(messages, **kw).text

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        return Completion(self.complete(messages, **kw))

    def complete_batch(self, batch: Sequence[Sequence[Message]], **kw) -> list[str]:
        return bounded_map(lambda m: self.complete(m, **kw), batch, self.max_concurrency)

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        """n independent samples; a given `seed` is offset per sample so they differ."""
        seed = kw.pop("seed", None)
        kws = [dict(kw, seed=None if seed is None else seed + i) for i in range(n)]
        return bounded_map(lambda k: self.complete_full(messages, **k), kws, self.max_concurrency)
