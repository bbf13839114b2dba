"""LLM policy backend: a local Hugging Face causal LM + LoRA (peft), the paper's policy.

Every agent gets the prompt of mfmdp/prompts/policy.txt (rendered by PolicyPrompter, the same in
training and simulation); its action is "状态：<state> | 行为：<behavior> | 内容：<text>".
- q_phi(y | z_i): the model's next-token logits after "状态：" restricted to the first tokens of the
  three state words (which must differ), combined with the prior: q ∝ m^_t(y) exp(g) (use_prior).
- pi_phi(b | y, z_i): likewise after "... | 行为：", computed in `realise` for the drawn y only
  (propose costs one forward pass per agent and candidate).
- Candidates: J MC-dropout masks on the LoRA inputs, one per candidate, shared by all the step's
  agents (policy/mc_dropout.py); the candidate mix mean_i q_j is what the simulator rolls out.
- realise: y ~ q_j, b ~ pi_j(. | y), then the text is generated (batched, sampled) after the forced
  "状态：y | 行为：b | 内容：" under the same mask.
- nll: nats per action token of the real action, where the state and the behavior decisions count
  as one token each and the text contributes its tokens + end-of-text (LLM units: never mix with
  the neural backend's (y, b) NLL).
- L_text (train_step / fit): -log q(y*) - log pi(b* | y*) + text_weight * mean token NLL of the
  real text, on agents with a known state.
Checkpoint: peft adapter (adapter_model.safetensors + adapter_config.json) + hf_policy.json.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.schema import STATES
from mfmdp.llm.errors import require
from mfmdp.policy.base import Actions, Proposal, StepContext, sample_categorical
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.prompting import PolicyPrompter

log = logging.getLogger(__name__)
CONFIG_FILE = "hf_policy.json"
_EPS = 1e-12

from pydantic import (  # torch/transformers/peft are imported lazily
    BaseModel,
    ConfigDict,
    Field,
)


class HFPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str | None = None  # local HF model dir (never downloaded at run time)
    gguf_file: str | None = None  # a .gguf inside model_path (dequantised by transformers + gguf)
    inputs: PolicyInputs = Field(default_factory=PolicyInputs)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1  # > 0: the candidates' MC-dropout masks live here
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    max_new_tokens: int = 48
    temperature: float = 0.9
    top_p: float = 0.95
    batch_size: int = 16  # sequences per forward pass
    use_chat_template: bool | None = None  # None: when the tokenizer has one
    prompt_path: str | None = None  # a user's own policy.txt (same header fields)
    text_weight: float = 1.0
    device: str | None = None


@dataclass
class AgentExample:
    """One real action of agent i at the step described by ctx (a training example for L_text)."""

    ctx: StepContext
    i: int
    state: int
    behavior: int
    text: str


def examples_from_step(ctx: StepContext, states: np.ndarray, behaviors: np.ndarray,
                       texts: Sequence[str]) -> list[AgentExample]:
    """The step's agents with a known state (unknown states are not trained on)."""
    return [AgentExample(ctx, i, int(states[i]), int(behaviors[i]), texts[i] or "")
            for i in range(len(states)) if states[i] >= 0]


class HFPolicy:
    """Implements mfmdp.policy.base.Policy over a peft LoRA model."""

    def __init__(self, model, tokenizer, config: HFPolicyConfig) -> None:
        self.torch = require("torch")
        from mfmdp.llm.hf import prepare_tokenizer

        self.model, self.tok, self.config = model, tokenizer, config
        prepare_tokenizer(self.tok)
        self.prompter = PolicyPrompter(config.inputs, config.prompt_path)
        act = self.prompter.action
        self._head, self._mid, self._tail = self._ids(act.head), self._ids(act.mid), self._ids(act.tail)
        self._state_ids = [self._ids(w) for w in act.state_words]
        self._behavior_ids = [self._ids(w) for w in act.behavior_words]
        self._state_first = self._distinct_first(self._state_ids, act.state_words, "state")
        self._behavior_first = self._distinct_first(self._behavior_ids, act.behavior_words, "behavior")
        self._newline = self._ids("\n")
        chat = config.use_chat_template
        self._chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        self.name = f"hf[{Path(config.model_path).name if config.model_path else 'model'},prior=" \
                    f"{int(config.inputs.use_prior)},ctx={config.inputs.context}]"
        self.model.eval()

    # --- construction, save, load ---------------------------------------------------------------
    @classmethod
    def create(cls, config: HFPolicyConfig, model=None, tokenizer=None) -> "HFPolicy":
        """A fresh LoRA adapter on a base model (given, or loaded from config.model_path)."""
        peft = require("peft")
        from mfmdp.policy.mc_dropout import install_shared_dropout

        if model is None:
            from mfmdp.llm.hf import load_causal_lm

            if not config.model_path:
                raise ValueError("HFPolicyConfig.model_path is required when no model is passed")
            model, tokenizer = load_causal_lm(config.model_path, config.gguf_file, config.device)
        lora = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                               target_modules=list(config.lora_targets), task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, lora)
        install_shared_dropout(model, config.lora_dropout)
        return cls(model, tokenizer, config)

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out))  # adapter_model.safetensors + adapter_config.json
        meta = {"config": self.config.model_dump(mode="json"), "prompt": self.prompter.id,
                "states": list(STATES)}
        atomic_write_json(out / CONFIG_FILE, meta)
        return out

    @classmethod
    def load(cls, adapter_dir: str | Path, model=None, tokenizer=None, trainable: bool = False) -> "HFPolicy":
        peft = require("peft")
        from mfmdp.policy.mc_dropout import install_shared_dropout

        adapter_dir = Path(adapter_dir)
        cfg_path = adapter_dir / CONFIG_FILE
        if not cfg_path.exists():
            raise FileNotFoundError(f"{cfg_path} not found: not an HF policy checkpoint")
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        config = HFPolicyConfig(**meta["config"])
        if model is None:
            from mfmdp.llm.hf import load_causal_lm

            model, tokenizer = load_causal_lm(config.model_path, config.gguf_file, config.device)
        model = peft.PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
        install_shared_dropout(model, config.lora_dropout)
        policy = cls(model, tokenizer, config)
        if meta.get("prompt") != policy.prompter.id:
            log.warning("policy checkpoint %s was trained with prompt %s, now using %s", adapter_dir,
                        meta.get("prompt"), policy.prompter.id)
        return policy

    # --- token plumbing ---------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _distinct_first(ids: list[list[int]], words: Sequence[str], what: str) -> list[int]:
        first = [x[0] if x else -1 for x in ids]
        if -1 in first or len(set(first)) != len(first):
            raise ValueError(f"the {what} words {list(words)} must start with distinct tokens under this "
                             "tokenizer; choose other words in the policy prompt file")
        return first

    def prompt_ids(self, ctx: StepContext, i: int) -> list[int]:
        """Token ids of agent i's prompt up to where the action starts (shared by every path)."""
        prompt = self.prompter.prompt(ctx, i)
        if self._chat:
            out = self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=True,
                                               add_generation_prompt=True)
            ids = out["input_ids"] if hasattr(out, "keys") else out
            return list(ids)
        return list(self.tok(prompt + "\n", add_special_tokens=True)["input_ids"])

    @property
    def _device(self):
        return next(self.model.parameters()).device

    def _hidden(self, seqs: list[list[int]]):
        """Last hidden states [B, L, H] of right-padded sequences (causal: padding never leaks left)."""
        torch = self.torch
        L = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.full((len(seqs), L), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
            mask[b, : len(s)] = 1
        lm = self.model.get_base_model()
        out = lm.base_model(input_ids=ids.to(self._device), attention_mask=mask.to(self._device))
        return out.last_hidden_state

    def _logits_at(self, seqs: list[list[int]], rows: list[int], cols: list[int]):
        h = self._hidden(seqs)
        head = self.model.get_base_model().get_output_embeddings()
        idx_r = self.torch.tensor(rows, device=h.device)
        idx_c = self.torch.tensor(cols, device=h.device)
        logits = head(h[idx_r, idx_c]).float()
        cap = getattr(self.model.get_base_model().config, "final_logit_softcapping", None)
        if cap:  # Gemma-style soft-capping, as the model's own forward applies it
            logits = self.torch.tanh(logits / cap) * cap
        return logits

    # --- q_phi and pi_phi -------------------------------------------------------------------------
    def _log_prior(self, ctx: StepContext, n: int):
        torch = self.torch
        if not self.config.inputs.use_prior:
            return None
        m = np.clip(np.asarray(ctx.m_hat, dtype=np.float64), _EPS, None)
        return torch.log(torch.tensor(m / m.sum(), dtype=torch.float32, device=self._device)).expand(n, -1)

    def _last_logits(self, seqs: list[list[int]], first_ids: list[int]):
        """Logits of the candidate first tokens at the last position of each sequence [len(seqs), K],
        in chunks of batch_size sequences; keeps the graph when grad is enabled."""
        torch = self.torch
        parts = []
        for a in range(0, len(seqs), self.config.batch_size):
            chunk = seqs[a:a + self.config.batch_size]
            logits = self._logits_at(chunk, list(range(len(chunk))), [len(x) - 1 for x in chunk])
            parts.append(logits[:, first_ids])
        return torch.cat(parts)

    def _state_log_q(self, ctx: StepContext, prompts: list[list[int]]):
        """log q(y | z_i) [n, S] under the current mask: state-word logits after "状态：", with the prior."""
        torch = self.torch
        g = self._last_logits([p + self._head for p in prompts], self._state_first)
        prior = self._log_prior(ctx, len(prompts))
        return torch.log_softmax(g + prior if prior is not None else g, dim=-1)

    def _behavior_log_pi(self, prompts: list[list[int]], states: Sequence[int]):
        """log pi(b | y_i, z_i) [n, B] for each agent's given state under the current mask."""
        torch = self.torch
        seqs = [p + self._head + self._state_ids[y] + self._mid for p, y in zip(prompts, states)]
        return torch.log_softmax(self._last_logits(seqs, self._behavior_first), dim=-1)

    def state_log_probs_torch(self, ctx: StepContext, candidate_seed: int | None):
        """Differentiable log q_phi(. | z_i, lambda_j) [n, S] for LCT training (grad flows into LoRA)."""
        from mfmdp.policy.mc_dropout import candidate_masks

        prompts = [self.prompt_ids(ctx, i) for i in range(len(ctx.profiles))]
        with candidate_masks(self.model, candidate_seed):
            return self._state_log_q(ctx, prompts)

    # --- Policy protocol --------------------------------------------------------------------------
    def propose(self, ctx: StepContext, n_candidates: int, rng: np.random.Generator) -> Proposal:
        from mfmdp.policy.mc_dropout import candidate_masks

        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        n, S = len(ctx.profiles), len(STATES)
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=n_candidates)]
        prompts = [self.prompt_ids(ctx, i) for i in range(n)]
        q = np.zeros((n_candidates, n, S))
        self.model.eval()
        if n:
            with self.torch.no_grad():
                for j, seed in enumerate(seeds):
                    with candidate_masks(self.model, seed):
                        q[j] = self._state_log_q(ctx, prompts).exp().double().cpu().numpy()
        return Proposal(state_probs=q, handle={"seeds": seeds, "prompts": prompts})

    def realise(self, ctx: StepContext, proposal: Proposal, j: int, rng: np.random.Generator) -> Actions:
        from mfmdp.policy.mc_dropout import candidate_masks

        h = proposal.handle
        q = proposal.state_probs[j]
        n = len(q)
        if n == 0:
            return Actions(np.zeros(0, np.int8), np.zeros(0, np.int8), [], extra={"candidate_seed": h["seeds"][j]})
        states = proposal.draw_states(j, rng)
        self.model.eval()
        with candidate_masks(self.model, h["seeds"][j]):
            with self.torch.no_grad():
                pi = self._behavior_log_pi(h["prompts"], states).exp().double().cpu().numpy()
            behaviors = sample_categorical(pi, rng)
            prefixes = [p + self._head + self._state_ids[y] + self._mid + self._behavior_ids[b] + self._tail
                        for p, y, b in zip(h["prompts"], states, behaviors)]
            texts = self.generate(prefixes, seed=int(rng.integers(0, 2**31 - 1)))
        return Actions(states.astype(np.int8), behaviors.astype(np.int8), texts,
                       extra={"candidate_seed": h["seeds"][j]})

    def generate(self, prefixes: list[list[int]], seed: int) -> list[str]:
        """Sampled continuations of token prefixes (left-padded batches), cut at the first newline."""
        torch = self.torch
        cfg = self.config
        eos = [self.tok.eos_token_id] + ([self._newline[0]] if len(self._newline) == 1 else [])
        out: list[str] = []
        self.model.eval()
        torch.manual_seed(seed)
        for a in range(0, len(prefixes), cfg.batch_size):
            chunk = prefixes[a:a + cfg.batch_size]
            L = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), L), self.tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), L), dtype=torch.long)
            for b, s in enumerate(chunk):
                ids[b, L - len(s):] = torch.tensor(s)
                mask[b, L - len(s):] = 1
            with torch.no_grad():
                gen = self.model.generate(input_ids=ids.to(self._device), attention_mask=mask.to(self._device),
                                          max_new_tokens=cfg.max_new_tokens, do_sample=cfg.temperature > 0,
                                          temperature=max(cfg.temperature, 1e-5), top_p=cfg.top_p,
                                          eos_token_id=eos, pad_token_id=self.tok.pad_token_id)
            for row in self.tok.batch_decode(gen[:, L:], skip_special_tokens=True):
                out.append(row.split("\n", 1)[0].strip())
        return out

    # --- likelihoods and training -----------------------------------------------------------------
    def _action_terms(self, examples: Sequence[AgentExample], with_text: bool = True):
        """Per example: (-log q(y*), -log pi(b*|y*), sum of text token NLLs, number of text tokens)."""
        torch = self.torch
        seqs, rows, cols, targets, owners = [], [], [], [], []
        state_rows, beh_rows = [], []
        for e_idx, ex in enumerate(examples):
            p = self.prompt_ids(ex.ctx, ex.i)
            base = p + self._head
            mid_end = base + self._state_ids[ex.state] + self._mid
            seq = mid_end + self._behavior_ids[ex.behavior] + self._tail
            text_ids = (self._ids(ex.text) + [self.tok.eos_token_id]) if with_text else []
            k = len(seqs)
            seqs.append(seq + text_ids)
            state_rows.append(len(rows)); rows.append(k); cols.append(len(base) - 1)
            beh_rows.append(len(rows)); rows.append(k); cols.append(len(mid_end) - 1)
            for t, tid in enumerate(text_ids):
                rows.append(k); cols.append(len(seq) - 1 + t); targets.append(tid); owners.append(e_idx)
        logits = self._logits_at(seqs, rows, cols)
        g = logits[state_rows][:, self._state_first]
        priors = [self._log_prior(ex.ctx, 1) for ex in examples]
        if priors[0] is not None:
            g = g + torch.cat(priors)
        ys = torch.tensor([ex.state for ex in examples], device=g.device)
        bs = torch.tensor([ex.behavior for ex in examples], device=g.device)
        nll_y = -torch.log_softmax(g, -1).gather(1, ys[:, None])[:, 0]
        nll_b = -torch.log_softmax(logits[beh_rows][:, self._behavior_first], -1).gather(1, bs[:, None])[:, 0]
        n_ex = len(examples)
        text_sum = torch.zeros(n_ex, device=g.device)
        text_n = torch.zeros(n_ex, device=g.device)
        if targets:
            decision_rows = set(state_rows) | set(beh_rows)
            text_rows = [r for r in range(len(rows)) if r not in decision_rows]
            lt = torch.log_softmax(logits[text_rows], -1)
            tok_nll = -lt.gather(1, torch.tensor(targets, device=g.device)[:, None])[:, 0]
            own = torch.tensor(owners, device=g.device)
            text_sum = text_sum.index_add(0, own, tok_nll)
            text_n = text_n.index_add(0, own, torch.ones_like(tok_nll))
        return nll_y, nll_b, text_sum, text_n

    def nll(self, ctx: StepContext, states: np.ndarray, behaviors: np.ndarray,
            texts: Sequence[str] | None = None) -> np.ndarray:
        """Nats per action token of each agent's real action (NaN where the state is unknown)."""
        out = np.full(len(states), np.nan)
        known = [i for i in range(len(states)) if states[i] >= 0]
        if not known:
            return out
        examples = [AgentExample(ctx, i, int(states[i]), int(behaviors[i]), texts[i] if texts else "")
                    for i in known]
        self.model.eval()
        with self.torch.no_grad():
            for a in range(0, len(examples), self.config.batch_size):
                chunk = examples[a:a + self.config.batch_size]
                ny, nb, ts, tn = self._action_terms(chunk, with_text=texts is not None)
                per_token = (ny + nb + ts) / (2.0 + tn)
                out[known[a:a + len(chunk)]] = per_token.double().cpu().numpy()
        return out

    def text_loss(self, examples: Sequence[AgentExample]):
        """L_text on a batch (a scalar tensor with grad) and its parts as floats."""
        ny, nb, ts, tn = self._action_terms(examples, with_text=True)
        text = (ts / tn.clamp_min(1.0)).mean()
        loss = ny.mean() + nb.mean() + self.config.text_weight * text
        return loss, {"state": ny.mean().item(), "behavior": nb.mean().item(), "text": text.item()}

    def train_step(self, examples: Sequence[AgentExample], optimizer) -> dict:
        self.model.train()
        optimizer.zero_grad()
        loss, parts = self.text_loss(examples)
        loss.backward()
        optimizer.step()
        self.model.eval()
        return {"loss": loss.item(), **parts}

    def optimizer(self, lr: float = 2e-4):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return self.torch.optim.AdamW(params, lr=lr)

    def fit(self, examples: Sequence[AgentExample], epochs: int = 1, lr: float = 2e-4, batch_size: int = 8,
            seed: int = 0, progress: bool = False) -> list[float]:
        """L_text training with LoRA over shuffled mini-batches; returns the loss of every batch."""
        if not examples:
            raise ValueError("no training examples with a known state")
        self.torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        opt = self.optimizer(lr)
        losses: list[float] = []
        n_batches = epochs * ((len(examples) + batch_size - 1) // batch_size)
        from rich.progress import Progress

        with Progress(disable=not progress) as bar:
            task = bar.add_task("LoRA L_text", total=n_batches)
            for _ in range(epochs):
                order = rng.permutation(len(examples))
                for a in range(0, len(order), batch_size):
                    losses.append(self.train_step([examples[k] for k in order[a:a + batch_size]], opt)["loss"])
                    bar.advance(task)
        return losses


def iter_examples(steps: Iterable[tuple[StepContext, np.ndarray, np.ndarray, Sequence[str]]]) -> list[AgentExample]:
    """Flatten (ctx, states, behaviors, texts) per step into training examples."""
    out: list[AgentExample] = []
    for ctx, s, b, t in steps:
        out.extend(examples_from_step(ctx, s, b, t))
    return out
