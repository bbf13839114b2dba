"""OpenAI-compatible chat backend (hosted APIs, vLLM, llama.cpp servers) on the `openai` SDK.

Configuration comes from arguments or the environment (MFMDP_LLM_BASE_URL, MFMDP_LLM_MODEL,
MFMDP_LLM_API_KEY). The SDK's own retries are off: RetryingModel retries (and budgets count every
attempt), so SDK errors are mapped here to LLMError / TransientLLMError. The API key is sent in the
Authorization header and nowhere else: it is not part of `name`, `describe()`, repr or logs.
"""

from __future__ import annotations

import os
from typing import Sequence

from mfmdp.llm.base import ChatModelBase, Completion, Message
from mfmdp.llm.errors import LLMError, TransientLLMError, require

ENV_BASE_URL = "MFMDP_LLM_BASE_URL"
ENV_MODEL = "MFMDP_LLM_MODEL"
ENV_API_KEY = "MFMDP_LLM_API_KEY"
TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
NO_KEY = "none"  # the SDK insists on a key; local servers (vLLM) ignore the header


class OpenAIChatModel(ChatModelBase):
    """POST {base_url}/chat/completions. `base_url` ends in /v1 (e.g. http://localhost:8000/v1)."""

    native_n = True  # one request returns n samples

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 8,
        default_params: dict | None = None,
    ) -> None:
        base_url = base_url or os.environ.get(ENV_BASE_URL)
        model = model or os.environ.get(ENV_MODEL)
        if not base_url:
            raise ValueError(f"no LLM base URL: pass base_url or set {ENV_BASE_URL} "
                             "(e.g. http://localhost:8000/v1 for a vLLM server)")
        if not model:
            raise ValueError(f"no LLM model name: pass model or set {ENV_MODEL}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY, "")
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.default_params = dict(default_params or {})
        self._sdk = None  # built on first use
        self.name = f"openai:{self.model}"

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatModel(base_url={self.base_url!r}, model={self.model!r})"

    def __getstate__(self) -> dict:  # the SDK client (sockets) is rebuilt where it is used, e.g. a Ray worker
        return {**self.__dict__, "_sdk": None}

    def describe(self) -> dict:
        """What a run manifest may record about this backend (no secrets)."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "timeout": self.timeout, "max_concurrency": self.max_concurrency}

    # --- HTTP ---------------------------------------------------------------------------------
    def _client(self):
        if self._sdk is None:
            openai = require("openai")
            self._sdk = openai.OpenAI(base_url=self.base_url, api_key=self._api_key or NO_KEY,
                                      timeout=self.timeout, max_retries=0)
        return self._sdk

    def _post(self, payload: dict) -> dict:
        """The chat completion as a plain dict; SDK errors mapped to LLMError (final) or
        TransientLLMError (worth a retry, with the server's Retry-After)."""
        import openai

        url = f"{self.base_url}/chat/completions"
        try:
            return self._client().chat.completions.create(**payload).model_dump()
        except openai.APIStatusError as e:
            msg = f"HTTP {e.status_code} from {url}: {str(e.message)[:300]}"
            if e.status_code in TRANSIENT_STATUS:
                raise TransientLLMError(msg, _retry_after(e.response.headers.get("retry-after"))) from None
            raise LLMError(msg) from None
        except openai.APITimeoutError as e:
            raise TransientLLMError(f"timeout after {self.timeout}s from {url}") from e
        except openai.APIConnectionError as e:
            raise TransientLLMError(f"cannot reach {url}: {e.__cause__ or e}") from e
        except openai.APIResponseValidationError as e:
            raise TransientLLMError(f"malformed response from {url}: {e}") from None

    def _payload(self, messages: Sequence[Message], kw: dict) -> dict:
        params = dict(self.default_params)
        params.update({k: v for k, v in kw.items() if v is not None})
        return {"model": self.model, "messages": list(messages), **params}

    @staticmethod
    def _choice(data: dict, choice: dict) -> Completion:
        message = choice.get("message") or {}
        text = message.get("content")
        if text is None and not message:
            raise TransientLLMError(f"malformed chat completion (no message content): {str(data)[:200]}")
        lp = (choice.get("logprobs") or {}).get("content")
        tokens = [(t["token"], float(t["logprob"]),
                   {a["token"]: float(a["logprob"]) for a in t.get("top_logprobs") or []})
                  for t in lp] if lp else None
        return Completion(text or "", tokens, {"finish_reason": choice.get("finish_reason")})

    def complete_full(self, messages: Sequence[Message], **kw) -> Completion:
        data = self._post(self._payload(messages, kw))
        choices = data.get("choices") or []
        if not choices:
            raise TransientLLMError(f"chat completion without choices: {str(data)[:200]}")
        out = self._choice(data, choices[0])
        if isinstance(data.get("usage"), dict):  # token counts, for budgets and reports
            out.extra["usage"] = data["usage"]
        return out

    def sample(self, messages: Sequence[Message], n: int, **kw) -> list[Completion]:
        data = self._post(self._payload(messages, dict(kw, n=n)))
        out = [self._choice(data, c) for c in data.get("choices") or []]
        if len(out) != n:  # some servers ignore n: top up with single calls
            seed = kw.pop("seed", None)
            while len(out) < n:
                s = None if seed is None else seed + len(out)
                out.append(self.complete_full(messages, **dict(kw, seed=s)))
        return out[:n]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
