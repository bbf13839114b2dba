"""Backend registry: a spec string -> a ChatModel, imported lazily, wrapped as configured.

Specs: "fake" | "openai" (env config) | "openai:MODEL" | "hf:/local/model/dir" (optionally
"hf:/dir::file.gguf"). Missing extras raise MissingExtraError with the pip hint.
"""

from __future__ import annotations

from mfmdp.llm.wrappers import CallLimitModel, RetryingModel


def _openai(arg: str | None, **kw):
    from mfmdp.llm.openai_http import OpenAIChatModel

    return OpenAIChatModel(model=arg or kw.pop("model", None), **kw)


def _hf(arg: str | None, **kw):
    from mfmdp.llm.hf import HFChatModel

    if not arg:
        raise ValueError("the hf backend needs a local model directory: 'hf:/path/to/model'")
    path, _, gguf = arg.partition("::")
    return HFChatModel(path=path, gguf_file=gguf or None, **kw)


def _fake(arg: str | None, **kw):
    from mfmdp.llm.fake import FakeChatModel

    return FakeChatModel(**kw)


BACKENDS = {"openai": _openai, "hf": _hf, "fake": _fake}


def get_chat_model(spec: str = "openai", *, retries: int = 5, max_calls: int | None = None,
                   max_total_tokens: int | None = None, **kw):
    """Build the backend named by `spec`; remote backends get retry (and an optional budget of calls
    and tokens, charged for every attempt)."""
    kind, _, arg = spec.partition(":")
    if kind not in BACKENDS:
        raise ValueError(f"unknown LLM backend {spec!r}; known: {', '.join(BACKENDS)} "
                         "(e.g. 'openai', 'openai:qwen2-7b', 'hf:/models/qwen2-1.5b', 'fake')")
    model = BACKENDS[kind](arg or None, **kw)
    if max_calls is not None or max_total_tokens is not None:
        model = CallLimitModel(model, max_calls, max_total_tokens)
    if kind == "openai" and retries > 0:
        model = RetryingModel(model, max_retries=retries)
    return model
