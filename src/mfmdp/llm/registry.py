"""Backend registry: a spec -> a ChatModel, imported lazily, wrapped as configured.

Specs (`parse_llm_spec` makes an `LLMSpec` of one): "fake" | "openai" (env config) | "openai:MODEL" |
"hf:/local/model/dir" (optionally "hf:/dir::file.gguf"). Missing extras raise MissingExtraError with
the pip hint.
"""

from __future__ import annotations

from mfmdp.core.spec import Spec
from mfmdp.llm.wrappers import CallLimitModel, RetryingModel

SPEC_EXAMPLES = "e.g. 'openai', 'openai:qwen2-7b', 'hf:/models/qwen2-1.5b', 'fake'"


class LLMSpec(Spec):
    """A chat model backend: `backend`, its argument (openai: the model name; hf: the local model
    directory) and hf's option, a GGUF file inside that directory."""

    backend: str
    arg: str | None = None
    gguf_file: str | None = None

    def __str__(self) -> str:
        text = self.backend if self.arg is None else f"{self.backend}:{self.arg}"
        return text if self.gguf_file is None else f"{text}::{self.gguf_file}"


def _openai(spec: LLMSpec, **kw):
    from mfmdp.llm.openai_http import OpenAIChatModel

    return OpenAIChatModel(model=spec.arg or kw.pop("model", None), **kw)


def _hf(spec: LLMSpec, **kw):
    from mfmdp.llm.hf import HFChatModel

    return HFChatModel(path=spec.arg, gguf_file=spec.gguf_file, **kw)


def _fake(spec: LLMSpec, **kw):
    from mfmdp.llm.fake import FakeChatModel

    return FakeChatModel(**kw)


BACKENDS = {"openai": _openai, "hf": _hf, "fake": _fake}


def parse_llm_spec(spec: str) -> LLMSpec:
    """`LLMSpec` of a backend spec string; a one-line ValueError naming what is allowed."""
    backend, _, rest = spec.partition(":")
    if backend not in BACKENDS:
        raise ValueError(f"unknown LLM backend {spec!r}; known: {', '.join(BACKENDS)} ({SPEC_EXAMPLES})")
    arg, _, gguf = rest.partition("::") if backend == "hf" else (rest, "", "")
    if backend == "hf" and not arg:
        raise ValueError("the hf backend needs a local model directory: 'hf:/path/to/model'")
    if backend == "fake" and arg:
        raise ValueError(f"LLM backend {spec!r}: fake takes no argument; use 'fake'")
    return LLMSpec(backend=backend, arg=arg or None, gguf_file=gguf or None)


def get_chat_model(spec: str | LLMSpec = "openai", *, retries: int = 5, max_calls: int | None = None,
                   max_total_tokens: int | None = None, **kw):
    """Build the backend named by `spec`; remote backends get retry (and an optional budget of calls
    and tokens, charged for every attempt)."""
    spec = parse_llm_spec(spec) if isinstance(spec, str) else spec
    model = BACKENDS[spec.backend](spec, **kw)
    if max_calls is not None or max_total_tokens is not None:
        model = CallLimitModel(model, max_calls, max_total_tokens)
    if spec.backend == "openai" and retries > 0:
        model = RetryingModel(model, max_retries=retries)
    return model
