"""Local Hugging Face causal LM backend (any model dir; GGUF files via transformers + gguf)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from mfmdp.llm.base import ChatModelBase, Message
from mfmdp.llm.errors import require

log = logging.getLogger(__name__)


def load_causal_lm(path: str | Path, gguf_file: str | None = None, device: str | None = None,
                   dtype: str | None = None):
    """(model, tokenizer) from a local directory (never the hub: local_files_only).

    `gguf_file` names a .gguf inside `path` (transformers dequantises it with the `gguf` package)."""
    require("transformers")
    torch = require("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model directory {path} does not exist")
    kw = {"local_files_only": True}
    if gguf_file:
        require("gguf")
        kw["gguf_file"] = gguf_file
    tok = _explicit_fast_tokenizer(path, gguf_file) or AutoTokenizer.from_pretrained(str(path), **kw)
    torch_dtype = getattr(torch, dtype) if dtype else None
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, **kw)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    prepare_tokenizer(tok)
    return model, tok


def _explicit_fast_tokenizer(path: Path, gguf_file: str | None):
    """A plain tokenizer.json saved as PreTrainedTokenizerFast (e.g. a custom or test tokenizer):
    AutoTokenizer would pick the model family's tokenizer class from config.json instead."""
    import json

    cfg = path / "tokenizer_config.json"
    if gguf_file or not cfg.is_file() or not (path / "tokenizer.json").is_file():
        return None
    try:
        cls = json.loads(cfg.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError):
        return None
    if cls != "PreTrainedTokenizerFast":
        return None
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)


def prepare_tokenizer(tok) -> None:
    """Left padding for batched generation; a pad token (eos) when the tokenizer has none."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token


def render_chat(tok, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """The model's chat template when it has one, else a plain 'role: content' transcript."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(list(messages), tokenize=False,
                                       add_generation_prompt=add_generation_prompt)
    text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + ("\nassistant: " if add_generation_prompt else "")


class HFChatModel(ChatModelBase):
    """Chat completions from a local causal LM; `complete_batch` generates a left-padded batch."""

    def __init__(self, model=None, tokenizer=None, path: str | None = None, gguf_file: str | None = None,
                 device: str | None = None, batch_size: int = 8, max_new_tokens: int = 256) -> None:
        if model is None:
            if path is None:
                raise ValueError("HFChatModel needs a model directory (path) or a model + tokenizer")
            model, tokenizer = load_causal_lm(path, gguf_file, device)
        else:
            prepare_tokenizer(tokenizer)
        self.model, self.tok = model, tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.max_concurrency = 1  # one GPU/CPU: batch, do not thread
        self.name = f"hf:{Path(path).name if path else type(model).__name__}" + (f"/{gguf_file}" if gguf_file else "")

    def complete(self, messages: Sequence[Message], **kw) -> str:
        return self.complete_batch([messages], **kw)[0]

    def complete_batch(self, batch: Sequence[Sequence[Message]], **kw) -> list[str]:
        torch = require("torch")
        temperature = kw.get("temperature", 0.0) or 0.0
        max_new = kw.get("max_tokens") or self.max_new_tokens
        seed = kw.get("seed")
        out: list[str] = []
        self.model.eval()
        for i in range(0, len(batch), self.batch_size):
            prompts = [render_chat(self.tok, m) for m in batch[i:i + self.batch_size]]
            enc = self.tok(prompts, return_tensors="pt", padding=True).to(self.model.device)
            if seed is not None:
                torch.manual_seed(seed + i)
            gen_kw = dict(max_new_tokens=max_new, pad_token_id=self.tok.pad_token_id)
            if temperature > 0:
                gen_kw.update(do_sample=True, temperature=temperature, top_p=kw.get("top_p", 1.0))
            else:
                gen_kw.update(do_sample=False)
            with torch.no_grad():
                ids = self.model.generate(**enc, **gen_kw)
            new = ids[:, enc["input_ids"].shape[1]:]
            out.extend(self.tok.batch_decode(new, skip_special_tokens=True))
        return out
