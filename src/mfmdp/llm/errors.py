"""Errors of the LLM layer: which failures are worth retrying, and a clear hint for missing extras."""

from __future__ import annotations


class LLMError(RuntimeError):
    """A call to a language model failed for good (bad request, bad credentials, ...)."""


class TransientLLMError(LLMError):
    """A failure that may go away on retry: HTTP 429 / 5xx, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CallLimitExceeded(LLMError):
    """The wrapper's call budget is spent (protects a user's API bill from runaway loops)."""


class MissingExtraError(ImportError):
    """An optional dependency of an LLM backend is not installed."""


def require(module: str, extra: str = "llm"):
    """Import `module` or raise a MissingExtraError naming the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"this LLM backend needs the '{module}' package: pip install 'mfmdp[{extra}]' ({e})"
        ) from e
