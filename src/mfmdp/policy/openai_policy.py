"""LLM policy over an OpenAI-compatible endpoint (a vLLM server or a hosted API), for serving at scale.

Same prompt file and action format as the HF backend (policy/prompting.py). Candidates come from
sampling: per agent one request for J * n_samples completions at `temperature`; candidate j owns
samples [j*n_samples, (j+1)*n_samples).
- q_j(y | z_i) = the state frequencies among candidate j's samples (add-1/2 smoothing), times the
  prior m^_t when use_prior: q ∝ m^ * freq. With `use_logprobs` and a server that returns
  top_logprobs, q is read off the log-probabilities at the state word instead (then identical for
  every candidate: the candidates differ only in their sampled actions).
- realise: y ~ q_j; the agent's action is one of candidate j's samples with that state; when it has
  none, one more request asks for the text with the state fixed.
- nll: a chat API cannot score a given action, so it is NaN (documented, never faked).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mfmdp.core.schema import STATES
from mfmdp.llm.base import Completion, bounded_map, user
from mfmdp.policy.base import Actions, Proposal, StepContext
from mfmdp.policy.inputs import PolicyInputs
from mfmdp.policy.prompting import PolicyPrompter

log = logging.getLogger(__name__)
N_BEHAVIORS = 2


@dataclass
class OpenAIPolicyConfig:
    inputs: PolicyInputs = field(default_factory=PolicyInputs)
    n_samples: int = 4  # samples per candidate and agent
    temperature: float = 1.0
    max_tokens: int = 96
    smoothing: float = 0.5
    use_logprobs: bool = False
    top_logprobs: int = 5
    prompt_path: str | None = None


@dataclass
class _Sample:
    state: int | None
    behavior: int | None
    text: str


class OpenAIPolicy:
    """Implements mfmdp.policy.base.Policy over any ChatModel of mfmdp.llm (usually OpenAIChatModel)."""

    def __init__(self, model, config: OpenAIPolicyConfig | None = None) -> None:
        self.model = model
        self.config = config or OpenAIPolicyConfig()
        self.prompter = PolicyPrompter(self.config.inputs, self.config.prompt_path)
        self.name = f"openai[{model.name},prior={int(self.config.inputs.use_prior)},ctx={self.config.inputs.context}]"
        self.stats = Counter()

    @classmethod
    def from_env(cls, inputs: PolicyInputs | None = None, backend: str = "openai", **config) -> "OpenAIPolicy":
        """Endpoint from MFMDP_LLM_BASE_URL / MFMDP_LLM_MODEL / MFMDP_LLM_API_KEY (with retries)."""
        from mfmdp.llm.registry import get_chat_model

        cfg = OpenAIPolicyConfig(inputs=inputs or PolicyInputs(), **config)
        return cls(get_chat_model(backend), cfg)

    # --- sampling -------------------------------------------------------------------------------
    def _request(self, prompt: str, n: int, seed: int) -> list[Completion]:
        kw = dict(temperature=self.config.temperature, max_tokens=self.config.max_tokens, seed=seed)
        if self.config.use_logprobs:
            kw.update(logprobs=True, top_logprobs=self.config.top_logprobs)
        return self.model.sample(user(prompt), n, **kw)

    def _parse(self, c: Completion) -> _Sample:
        y, b, text = self.prompter.action.parse(c.text)
        if y is None:
            self.stats["unparseable"] += 1
        return _Sample(y, b, text)

    def _logprob_state(self, c: Completion) -> np.ndarray | None:
        """State distribution at the state word from top_logprobs, or None when not readable."""
        if not c.tokens:
            return None
        head = self.prompter.action.head.strip()
        acc = ""
        for k, (tok, lp, alts) in enumerate(c.tokens):
            acc += tok
            if acc.strip().endswith(head) and k + 1 < len(c.tokens):
                nxt_tok, nxt_lp, nxt_alts = c.tokens[k + 1]
                cands = dict(nxt_alts)
                cands.setdefault(nxt_tok, nxt_lp)
                p = np.zeros(len(STATES))
                for t, l in cands.items():
                    t = t.strip()
                    for s, word in enumerate(self.prompter.action.state_words):
                        if t and (word.startswith(t) or t.startswith(word)):
                            p[s] += np.exp(l)
                            break
                return p / p.sum() if p.sum() > 0 else None
        return None

    def _with_prior(self, freq: np.ndarray, ctx: StepContext) -> np.ndarray:
        if self.config.inputs.use_prior:
            freq = freq * np.clip(np.asarray(ctx.m_hat, dtype=np.float64), 1e-12, None)
        return freq / freq.sum(-1, keepdims=True)

    # --- Policy protocol ------------------------------------------------------------------------
    def propose(self, ctx: StepContext, n_candidates: int, rng: np.random.Generator) -> Proposal:
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        n, S, ns = len(ctx.profiles), len(STATES), self.config.n_samples
        prompts = self.prompter.prompts(ctx)
        seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]
        raw = bounded_map(lambda a: self._request(prompts[a], n_candidates * ns, seeds[a]), list(range(n)),
                          getattr(self.model, "max_concurrency", 4))
        samples = [[self._parse(c) for c in comps] for comps in raw]
        q = np.zeros((n_candidates, n, S))
        for i in range(n):
            lp = [self._logprob_state(c) for c in raw[i]] if self.config.use_logprobs else []
            lp = [x for x in lp if x is not None]
            for j in range(n_candidates):
                if lp:
                    freq = np.mean(lp, axis=0) + 1e-6
                else:
                    own = samples[i][j * ns:(j + 1) * ns]
                    freq = np.full(S, self.config.smoothing)
                    for s in own:
                        if s.state is not None:
                            freq[s.state] += 1.0
                q[j, i] = self._with_prior(freq, ctx)
        return Proposal(state_probs=q, handle={"samples": samples, "prompts": prompts})

    def realise(self, ctx: StepContext, proposal: Proposal, j: int, rng: np.random.Generator) -> Actions:
        q = proposal.state_probs[j]
        n, ns = len(q), self.config.n_samples
        samples, prompts = proposal.handle["samples"], proposal.handle["prompts"]
        states = proposal.draw_states(j, rng)
        behaviors = np.zeros(n, dtype=np.int8)
        texts = [""] * n
        missing: list[int] = []
        for i in range(n):
            own = samples[i][j * ns:(j + 1) * ns]
            match = [s for s in own if s.state == states[i]]
            if match:
                pick = match[int(rng.integers(len(match)))]
                behaviors[i] = pick.behavior if pick.behavior is not None else self._behavior(own, rng)
                texts[i] = pick.text
            else:
                missing.append(i)
        if missing:
            self.stats["forced_state_calls"] += len(missing)
            words = self.prompter.action.state_words
            forced = [prompts[i] + f"\n你的状态是：{words[states[i]]}。" for i in missing]
            seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=len(missing))]
            outs = bounded_map(lambda a: self._request(forced[a], 1, seeds[a])[0], list(range(len(missing))),
                               getattr(self.model, "max_concurrency", 4))
            for i, c in zip(missing, outs):
                s = self._parse(c)
                own = samples[i][j * ns:(j + 1) * ns]
                behaviors[i] = s.behavior if s.behavior is not None else self._behavior(own, rng)
                texts[i] = s.text
        return Actions(states.astype(np.int8), behaviors, texts)

    def _behavior(self, own: list[_Sample], rng: np.random.Generator) -> int:
        freq = np.full(N_BEHAVIORS, self.config.smoothing)
        for s in own:
            if s.behavior is not None:
                freq[s.behavior] += 1.0
        return int(rng.choice(N_BEHAVIORS, p=freq / freq.sum()))

    def nll(self, ctx: StepContext, states: np.ndarray, behaviors: np.ndarray, texts=None) -> np.ndarray:
        """NaN: a chat-completions API cannot score a given action (use the HF backend for NLL)."""
        return np.full(len(states), np.nan)
