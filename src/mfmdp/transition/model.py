"""The Event Transformer f_psi: x_t = (r_{t-1}, m_{t-1}, p_t, c_t, time_t) -> m^_t over STATES.

Causal pre-LN Transformer with a sliding attention window of W steps (a step t attends to steps
t-W+1..t) and ALiBi distance biases instead of absolute positions, identical in training and in
inference, so a step costs the same at step 10 and at step 2,500 and long events need no length
extrapolation. Stacked layers widen the receptive field to n_layers * (W - 1) steps, as in any
sliding-window Transformer; the incremental path (transition/session.py) reproduces it exactly.

The math of one incremental step lives in `incremental.py`, written once for numpy (fast
inference) and torch (differentiable rollouts for L_roll and LCT).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mfmdp.core.atomic import atomic_path, atomic_write_json
from mfmdp.core.schema import STATES
from mfmdp.transition.features import PROFILE_DIM, TIME_DIM, signal_dim
from mfmdp.transition.options import ModelSizes

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_SIZES = ModelSizes()  # the sizes a config may set (and their defaults) live with the config schema
SKIP_EPS = 0.05  # the persistence skip adds skip * log(m_prev + SKIP_EPS): bounded for empty states


@dataclass
class TransitionConfig:
    n_states: int = len(STATES)
    synopsis_dim: int = 256
    profile_dim: int = PROFILE_DIM
    signal_dim: int = signal_dim(256)
    time_dim: int = TIME_DIM
    d_model: int = _SIZES.d_model
    n_layers: int = _SIZES.n_layers
    n_heads: int = _SIZES.n_heads
    d_ff: int = _SIZES.d_ff
    dropout: float = _SIZES.dropout
    window: int = _SIZES.window
    encoder: str = "hash"  # encoder spec that produced r and c: the simulator must use the same
    synopsis_decay: float = _SIZES.synopsis_decay
    extra: dict = field(default_factory=dict)  # free-form provenance (training data, metrics)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    @property
    def schedule_dim(self) -> int:
        return self.profile_dim + self.signal_dim + self.time_dim

    @property
    def input_dim(self) -> int:
        return self.synopsis_dim + self.n_states + self.schedule_dim

    @classmethod
    def for_encoder(cls, encoder_spec, encoder_dim: int, **kw) -> "TransitionConfig":
        """`encoder_spec`: a spec string or an EncoderSpec, kept as its string (written to config.json)."""
        return cls(synopsis_dim=encoder_dim, signal_dim=signal_dim(encoder_dim), encoder=str(encoder_spec), **kw)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Geometric per-head distance penalties (Press et al. 2022): head h gets 2^(-8(h+1)/H)."""
    return np.array([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)], dtype=np.float32)


def window_bias(T: int, window: int, slopes: torch.Tensor) -> torch.Tensor:
    """[H, T, T] additive attention bias: -slope * (t - s) for t-W < s <= t, -inf elsewhere."""
    idx = torch.arange(T)
    dist = (idx[:, None] - idx[None, :]).to(slopes.dtype)
    allowed = (dist >= 0) & (dist < window)
    bias = -slopes[:, None, None] * dist[None]
    return bias.masked_fill(~allowed[None], float("-inf"))


class Block(nn.Module):
    def __init__(self, cfg: TransitionConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, cfg.d_ff), nn.Linear(cfg.d_ff, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.n_heads, self.p = cfg.n_heads, cfg.dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, d = x.shape
        H = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(B, T, d)))
        x = x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(x)), approximate="tanh"))))
        return x, k, v


class EventTransformer(nn.Module):
    """f_psi. `forward` is the training (full-sequence) path; `session` the incremental one."""

    def __init__(self, cfg: TransitionConfig):
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.input_dim, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_states)
        self.skip = nn.Parameter(torch.zeros(()))  # weight of log(m_prev): a learnable persistence path
        self.register_buffer("slopes", torch.from_numpy(alibi_slopes(cfg.n_heads)), persistent=False)

    # TransitionModel protocol
    @property
    def n_states(self) -> int:
        return self.cfg.n_states

    @property
    def synopsis_dim(self) -> int:
        return self.cfg.synopsis_dim

    def forward(self, r_prev: torch.Tensor, m_prev: torch.Tensor, sched: torch.Tensor,
                return_kv: bool = False):
        """r_prev [B,T,D], m_prev [B,T,S], sched [B,T,Q] (profiles|signals|time) -> logits [B,T,S]
        (+ per-layer keys/values [B,H,T,dh] when `return_kv`, for rollouts from teacher-forced prefixes)."""
        x = self.in_proj(torch.cat([r_prev, m_prev, sched], dim=-1))
        bias = window_bias(x.shape[1], self.cfg.window, self.slopes)
        kv = []
        for blk in self.blocks:
            x, k, v = blk(x, bias)
            kv.append((k, v))
        logits = self.head(self.ln_f(x)) + self.skip * torch.log(m_prev + SKIP_EPS)
        return (logits, kv) if return_kv else logits

    def session(self, schedule, batch: int = 1):
        from mfmdp.transition.session import Session

        return Session.create(self, schedule, batch)

    def teacher_forced(self, schedule, m_prev, r_prev, upto: int | None = None):
        """One forward pass over the real inputs of steps < upto (PrefixModel protocol)."""
        from mfmdp.transition.prefix import Prefix

        return Prefix(self, schedule, m_prev, r_prev, upto)

    # checkpoints: safetensors weights + JSON config, never pickles
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / WEIGHTS_FILE) as tmp:
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        atomic_write_json(out / CONFIG_FILE, asdict(self.cfg))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> "EventTransformer":
        from safetensors.torch import load_file

        d = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (d / name).is_file():
                raise FileNotFoundError(f"transition checkpoint {d}: missing {name}")
        try:
            cfg = TransitionConfig(**json.loads((d / CONFIG_FILE).read_text()))
        except TypeError as e:
            raise ValueError(f"transition checkpoint {d / CONFIG_FILE}: bad config: {e}") from None
        model = cls(cfg)
        model.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
        return model.eval()


def params(model: EventTransformer, detach: bool = True) -> dict:
    """Weights in `x @ W` layout for the incremental path (torch tensors; detached unless asked)."""
    g = (lambda t: t.detach()) if detach else (lambda t: t)
    cfg = model.cfg
    w_in = g(model.in_proj.weight).T
    D, S = cfg.synopsis_dim, cfg.n_states
    p = {
        "w_r": w_in[:D], "w_m": w_in[D:D + S], "w_sched": w_in[D + S:], "b_in": g(model.in_proj.bias),
        "lnf_g": g(model.ln_f.weight), "lnf_b": g(model.ln_f.bias),
        "w_head": g(model.head.weight).T, "b_head": g(model.head.bias), "skip": g(model.skip),
        "slopes": model.slopes, "n_heads": cfg.n_heads, "window": cfg.window, "layers": [],
    }
    for blk in model.blocks:
        p["layers"].append({
            "ln1_g": g(blk.ln1.weight), "ln1_b": g(blk.ln1.bias), "ln2_g": g(blk.ln2.weight), "ln2_b": g(blk.ln2.bias),
            "w_qkv": g(blk.qkv.weight).T, "b_qkv": g(blk.qkv.bias), "w_out": g(blk.out.weight).T, "b_out": g(blk.out.bias),
            "w_ff1": g(blk.ff1.weight).T, "b_ff1": g(blk.ff1.bias), "w_ff2": g(blk.ff2.weight).T, "b_ff2": g(blk.ff2.bias),
        })
    return p


def to_numpy(p: dict) -> dict:
    """A contiguous float32 numpy copy of `params` (the fast inference path)."""
    def conv(v):
        if isinstance(v, torch.Tensor):
            return np.ascontiguousarray(v.detach().cpu().numpy().astype(np.float32))
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(p)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def scaled(dh: int) -> float:
    return 1.0 / math.sqrt(dh)
