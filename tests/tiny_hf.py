"""A tiny offline Qwen2 + character-level tokenizer for the HF-policy tests (no hub, no downloads)."""

from __future__ import annotations

import json
import string
from pathlib import Path

from mfmdp.llm.prompts import load_prompt

SAMPLE_TEXTS = ["这是假的吧", "转发微博", "好人一生平安", "谣言，别信", "太感人了", "真的吗？", "支持警察", "心疼"]
TOPIC = "某地民警抗疫期间殉职，还有三个月退休"


def build_tokenizer(extra_text: str = ""):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = set(load_prompt("policy").body + "".join(v for _, v in load_prompt("policy").meta))
    chars |= set("".join(SAMPLE_TEXTS) + TOPIC + extra_text)
    chars |= set(string.printable) | set("普通用户资料未知认证机构账号个人男女粉丝第步暂无（不提供）；，。？！…")
    specials = ["[PAD]", "[UNK]", "[EOS]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(chars))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")


def build_model_dir(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised 2-layer Qwen2 (hidden 32) and its tokenizer to `path`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=None, initializer_range=0.2)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    cfg_file = path / "tokenizer_config.json"  # so that mfmdp's loader picks the fast tokenizer
    tc = json.loads(cfg_file.read_text())
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_file.write_text(json.dumps(tc))
    return path


def load_model_dir(path: Path):
    """(model, tokenizer) from `path`. The tokenizer is loaded as PreTrainedTokenizerFast because
    AutoTokenizer would pick Qwen2Tokenizer from config.json's model_type."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    return (AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True),
            PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True))
