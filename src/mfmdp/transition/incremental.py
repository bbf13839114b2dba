"""One incremental step of the Event Transformer, written once for numpy and torch.

numpy runs inference (a batch-1 step is ~100 small array operations: far less Python overhead than
torch modules); torch runs the differentiable rollouts (L_roll in training, `rollout_torch` for LCT).
Both read the weights from `model.params` and reproduce `EventTransformer.forward` exactly: pre-LN
blocks, tanh-GELU, ALiBi biases, a window of W steps.

Keys/values of earlier steps ("prefix") are [B, H, W, dh] per layer with the position of every
slot in `pos` (-1: empty); a rollout adds its own keys per candidate without touching the prefix,
so J candidates share one prefix and forking costs nothing until a step is taken.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mfmdp.transition.model import SKIP_EPS


class NumpyOps:
    @staticmethod
    def mean(x):
        return x.mean(axis=-1, keepdims=True)

    @staticmethod
    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    sqrt, tanh, log = staticmethod(np.sqrt), staticmethod(np.tanh), staticmethod(np.log)

    @staticmethod
    def cat(xs, axis):
        return np.concatenate(xs, axis)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis)

    @staticmethod
    def perm(x, axes):
        return x.transpose(axes)

    @staticmethod
    def const(a, like=None):
        return np.asarray(a, dtype=np.float32)


    @staticmethod
    def repeat_rows(x, J):
        return np.repeat(x, J, axis=0)

    contiguous = staticmethod(np.ascontiguousarray)


class TorchOps:
    @staticmethod
    def mean(x):
        return x.mean(dim=-1, keepdim=True)

    @staticmethod
    def softmax(x):
        return torch.softmax(x, dim=-1)

    sqrt, tanh, log = staticmethod(torch.sqrt), staticmethod(torch.tanh), staticmethod(torch.log)

    @staticmethod
    def cat(xs, axis):
        return torch.cat(xs, axis)

    @staticmethod
    def stack(xs, axis):
        return torch.stack(xs, axis)

    @staticmethod
    def perm(x, axes):
        return x.permute(*axes)

    @staticmethod
    def const(a, like=None):
        return torch.as_tensor(np.asarray(a, dtype=np.float32))


    @staticmethod
    def repeat_rows(x, J):
        return x.repeat_interleave(J, dim=0)

    @staticmethod
    def contiguous(x):
        return x.contiguous()


NP, TH = NumpyOps(), TorchOps()


def layer_norm(ops, x, g, b, eps: float = 1e-5):
    xc = x - ops.mean(x)
    return xc / ops.sqrt(ops.mean(xc * xc) + eps) * g + b


def gelu(ops, x):
    return 0.5 * x * (1.0 + ops.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def qkv(ops, lp: dict, x, n_heads: int):
    """x [R, d] -> q (scaled), k, v, each [R, H, dh]."""
    R, d = x.shape
    dh = d // n_heads
    y = (layer_norm(ops, x, lp["ln1_g"], lp["ln1_b"]) @ lp["w_qkv"] + lp["b_qkv"]).reshape(R, 3, n_heads, dh)
    return y[:, 0] * (1.0 / math.sqrt(dh)), y[:, 1], y[:, 2]


def finish_block(ops, lp: dict, x, attn):
    """attn [R, d] (heads concatenated) -> the block's output [R, d]."""
    x = x + attn @ lp["w_out"] + lp["b_out"]
    h = gelu(ops, layer_norm(ops, x, lp["ln2_g"], lp["ln2_b"]) @ lp["w_ff1"] + lp["b_ff1"])
    return x + h @ lp["w_ff2"] + lp["b_ff2"]


def head_logits(ops, p: dict, x, m_prev):
    return layer_norm(ops, x, p["lnf_g"], p["lnf_b"]) @ p["w_head"] + p["b_head"] + p["skip"] * ops.log(m_prev + SKIP_EPS)


def attend(ops, q, pk, pv, pbias, nk=None, nv=None, nbias=None):
    """q [B,H,J,dh] against the shared prefix pk/pv [B,H,W,dh] (bias broadcastable to [B,H,J,W])
    and optional per-candidate keys nk/nv [B,H,J,n,dh] (bias broadcastable to [B,H,J,n])."""
    s = q @ pk.swapaxes(-1, -2) + pbias
    W = s.shape[-1]
    if nk is not None:
        sn = (nk @ q[..., None])[..., 0] + nbias
        s = ops.cat([s, sn], -1)
    w = ops.softmax(s)
    out = w[..., :W] @ pv
    if nk is not None:
        out = out + (w[..., None, W:] @ nv)[..., 0, :]
    return out


def prefix_bias(slopes: np.ndarray, pos: np.ndarray, t, window: int) -> np.ndarray:
    """[B|1, H, 1, W] bias of the prefix slots (positions `pos` [B|1, W], -1 empty) for a query at
    position(s) t (int or [B]): -slope * distance inside the window, -inf outside."""
    pos = np.atleast_2d(pos)
    t = np.asarray(t).reshape(-1, 1)
    dist = (t - pos).astype(np.float32)
    ok = (pos >= 0) & (dist >= 0) & (dist < window)
    bias = np.where(ok[:, None, None, :], -slopes[None, :, None, None] * dist[:, None, None, :], -np.inf)
    return bias.astype(np.float32)


def new_bias(slopes: np.ndarray, n: int, window: int) -> np.ndarray:
    """[1, H, 1, n] bias of a rollout's own keys at distances n-1 .. 0."""
    dist = np.arange(n - 1, -1, -1, dtype=np.float32)
    bias = np.where(dist < window, -slopes[:, None] * dist[None], -np.inf)
    return bias[None, :, None, :].astype(np.float32)


def rollout(ops, p: dict, prefix_kv: list, prefix_pos: np.ndarray, t0, m_first, r_frozen, sched_rows, k: int,
            J: int = 1, feedback=None):
    """Self-fed K-step rollout: logits [B*J, k, S] for positions t0 .. t0+k-1.

    prefix_kv: per layer (pk, pv) [B,H,W,dh]; prefix_pos [B|1, W]; t0 int or int[B];
    m_first [B*J, S] (the realised histogram fed at t0), r_frozen [B*J, D]; sched_rows [B|1, k, d]
    (projected schedule incl. the input bias). Rows of m_first are row-major: batch row b, candidate j
    at b*J + j. The prefix is read, never written. `feedback` maps each forecast to the mix fed to the
    next step (default: the forecast itself).
    """
    H, window = p["n_heads"], p["window"]
    slopes = p["slopes"]
    slopes = slopes.detach().cpu().numpy() if isinstance(slopes, torch.Tensor) else np.asarray(slopes)
    B = prefix_kv[0][0].shape[0]
    R = m_first.shape[0]
    if R != B * J:
        raise ValueError(f"rollout: {R} rows is not batch {B} x {J} candidates")
    d = sched_rows.shape[-1]
    dh = d // H
    # A gathered prefix is often a strided view: batched matmuls on it copy (or loop) at every step
    # and layer; one copy here made a 64-row, 30-step training rollout ~50x faster.
    prefix_kv = [(ops.contiguous(pk), ops.contiguous(pv)) for pk, pv in prefix_kv]
    if sched_rows.shape[0] > 1 and J > 1:
        sched_rows = ops.repeat_rows(sched_rows, J)
    x_r = r_frozen @ p["w_r"]
    m = m_first
    new_k = [[] for _ in prefix_kv]
    new_v = [[] for _ in prefix_kv]
    out = []
    for i in range(k):
        x = x_r + m @ p["w_m"] + sched_rows[:, i]
        pb = ops.const(prefix_bias(slopes, prefix_pos, np.asarray(t0) + i, window))
        nb = ops.const(new_bias(slopes, i + 1, window))
        for li, lp in enumerate(p["layers"]):
            q, kk, vv = qkv(ops, lp, x, H)
            new_k[li].append(kk)
            new_v[li].append(vv)
            qb = ops.perm(q.reshape(B, J, H, dh), (0, 2, 1, 3))
            nk = ops.perm(ops.stack(new_k[li], 1).reshape(B, J, i + 1, H, dh), (0, 3, 1, 2, 4))
            nv = ops.perm(ops.stack(new_v[li], 1).reshape(B, J, i + 1, H, dh), (0, 3, 1, 2, 4))
            pk, pv = prefix_kv[li]
            a = attend(ops, qb, pk, pv, pb, nk, nv, nb)
            a = ops.perm(a, (0, 2, 1, 3)).reshape(R, d)
            x = finish_block(ops, lp, x, a)
        logits = head_logits(ops, p, x, m)
        out.append(logits)
        m = ops.softmax(logits)
        if feedback is not None:
            m = feedback(m)
    return ops.stack(out, 1)
