"""LLM layer: a tiny ChatModel protocol, backends (OpenAI-compatible HTTP, local HF, fake), wrappers."""

from mfmdp.llm.base import ChatModel, ChatModelBase, Completion, Message, bounded_map, user
from mfmdp.llm.errors import CallLimitExceeded, LLMError, MissingExtraError, TransientLLMError
from mfmdp.llm.fake import FakeChatModel
from mfmdp.llm.registry import LLMSpec, get_chat_model, parse_llm_spec
from mfmdp.llm.wrappers import CallLimitModel, RetryingModel

__all__ = [
    "CallLimitExceeded", "CallLimitModel", "ChatModel", "ChatModelBase", "Completion", "FakeChatModel",
    "LLMError", "LLMSpec", "Message", "MissingExtraError", "RetryingModel", "TransientLLMError", "bounded_map",
    "get_chat_model", "parse_llm_spec", "user",
]
