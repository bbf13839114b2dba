"""A deterministic fake chat model so every test runs offline (Concordia's mock model, programmable)."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Callable, Sequence

from mfmdp.llm.base import ChatModelBase, Message

Responder = Callable[[Sequence[Message], dict], str]


class FakeChatModel(ChatModelBase):
    """Answers with `responder(messages, kw)`, or a fixed string, or (default) a short deterministic
    pseudo-text derived from a hash of the messages and the seed. Counts calls; thread-safe."""

    def __init__(self, responder: Responder | str | None = None, name: str = "fake") -> None:
        self.responder = responder
        self.name = name
        self.calls = 0
        self.history: list[list[Message]] = []
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], **kw) -> str:
        with self._lock:
            self.calls += 1
            self.history.append(list(messages))
        if callable(self.responder):
            return self.responder(messages, kw)
        if isinstance(self.responder, str):
            return self.responder
        digest = hashlib.sha256(
            (json.dumps(list(messages), ensure_ascii=False) + str(kw.get("seed"))).encode()
        ).hexdigest()
        return f"fake-{digest[:12]}"
