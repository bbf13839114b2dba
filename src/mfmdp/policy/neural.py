"""The neural policy backend (default, CPU-fast): PolicyNet for (y, b), retrieval for the text.

propose: J candidates = J dropout masks drawn from the simulator's rng, shared by the step's agents;
         `Proposal.state_probs` [J, n, S] = q_phi(y | z_i, lambda_j).
realise: s_i ~ q_j(. | z_i), b_i ~ pi_j(. | s_i, z_i), text retrieved from the training pool.
nll:     -log p(y, b) in nats from the dropout-free network (marginalised over unknown states).
Checkpoint: policy.safetensors (weights + input standardiser) + policy.json (config), pool/ beside.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mfmdp.core.atomic import atomic_write_json
from mfmdp.core.schema import Labels
from mfmdp.policy.base import Actions, Proposal, StepContext, sample_categorical
from mfmdp.policy.network import NeuralPolicyConfig, PolicyNet, action_nll, agent_features, log_prior_of
from mfmdp.policy.retrieval import RetrievalPool

log = logging.getLogger(__name__)

WEIGHTS = "policy.safetensors"
CONFIG = "policy.json"
POOL_DIR = "pool"


class NeuralPolicy:
    """Implements `mfmdp.policy.base.Policy`."""

    def __init__(
        self,
        config: NeuralPolicyConfig,
        net: PolicyNet | None = None,
        pool: RetrievalPool | None = None,
        encoder=None,
        top_k: int = 16,
        training: dict | None = None,
    ):
        self.config = config
        self.net = net if net is not None else PolicyNet(config)
        self.net.eval()
        self.pool = pool
        self.encoder = encoder  # TextEncoder for topic embeddings (retrieval query); optional
        self.top_k = top_k
        self.training = training or {}  # how it was trained (for the manifest)
        self._topic_cache: dict[str, np.ndarray] = {}
        self._warned_no_pool = False
        inputs = config.inputs
        self.name = f"neural[prior={int(inputs.use_prior)},ctx={inputs.context}]"

    # --- inputs -------------------------------------------------------------------------------
    def features(self, ctx: StepContext) -> np.ndarray:
        return agent_features(self.config, ctx.profiles, ctx.synopsis, ctx.signal, ctx.time, ctx.own_previous)

    def _forward(self, ctx: StepContext, masks: np.ndarray | None):
        x = torch.from_numpy(self.features(ctx))
        prior = log_prior_of(ctx.m_hat) if self.config.inputs.use_prior else None
        with torch.no_grad():
            return self.net(x, prior, None if masks is None else torch.from_numpy(masks))

    # --- Policy protocol ----------------------------------------------------------------------
    def propose(self, ctx: StepContext, n_candidates: int, rng: np.random.Generator) -> Proposal:
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        masks = self.net.sample_masks(n_candidates, rng)
        log_q, log_pi = self._forward(ctx, masks)
        return Proposal(
            state_probs=log_q.exp().double().numpy(),
            handle={"behavior_probs": log_pi.exp().double().numpy(), "masks": masks},
        )

    def realise(self, ctx: StepContext, proposal: Proposal, j: int, rng: np.random.Generator) -> Actions:
        pi = proposal.handle["behavior_probs"][j]  # [n, S, B]
        states = proposal.draw_states(j, rng)
        behaviors = sample_categorical(pi[np.arange(len(states)), states], rng)
        states8, behaviors8 = states.astype(np.int8), behaviors.astype(np.int8)
        if self.pool is None:
            if not self._warned_no_pool:
                log.warning("neural policy has no retrieval pool: texts are empty, labels come from the annotator")
                self._warned_no_pool = True
            return Actions(states8, behaviors8, [""] * len(states))
        rows = self.pool.retrieve(states, behaviors, self._query(ctx), rng, self.top_k)
        labels: Labels = self.pool.labels.take(rows)
        labels.codes["state"] = states8.copy()
        labels.codes["behavior"] = behaviors8.copy()
        return Actions(
            states=states8,
            behaviors=behaviors8,
            texts=[self.pool.texts[i] for i in rows],
            embeddings=self.pool.embeddings[rows],
            extra={"labels": labels, "pool_rows": rows, "popularity": self.pool.popularity[rows]},
        )

    def nll(self, ctx: StepContext, states: np.ndarray, behaviors: np.ndarray) -> np.ndarray:
        log_q, log_pi = self._forward(ctx, None)
        out = action_nll(log_q, log_pi, torch.as_tensor(np.asarray(states)), torch.as_tensor(np.asarray(behaviors)))
        return out.double().numpy()

    # --- retrieval query ----------------------------------------------------------------------
    def _topic_vector(self, topic: str) -> np.ndarray | None:
        if self.encoder is None or not topic:
            return None
        v = self._topic_cache.get(topic)
        if v is None:
            v = np.asarray(self.encoder.encode([topic])[0], dtype=np.float32)
            if len(self._topic_cache) > 1024:
                self._topic_cache.clear()
            self._topic_cache[topic] = v
        return v

    def _query(self, ctx: StepContext) -> np.ndarray | None:
        """What the agent sees of the crowd (its context vector) plus the topic, unit-weighted."""
        parts = []
        if self.config.inputs.context != "none":
            c = np.asarray(ctx.synopsis, dtype=np.float32)
            norm = float(np.linalg.norm(c))
            if norm > 1e-9 and c.shape == (self.pool.dim,):
                parts.append(c / norm)
        topic = self._topic_vector(ctx.topic)
        if topic is not None and topic.shape == (self.pool.dim,):
            parts.append(topic)
        return np.sum(parts, axis=0) if parts else None

    # --- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(d / WEIGHTS))
        meta = {
            "backend": "neural",
            "config": self.config.model_dump(mode="json"),
            "top_k": self.top_k,
            "encoder": getattr(self.encoder, "name", None),
            "training": self.training,
        }
        atomic_write_json(d / CONFIG, meta)
        if self.pool is not None:
            self.pool.save(d / POOL_DIR)
        return d

    @classmethod
    def load(cls, directory: str | Path, encoder=None) -> "NeuralPolicy":
        """Load a checkpoint written by `save`. `encoder` (a TextEncoder, e.g. from
        `get_encoder(meta["encoder"] ...)`) is only used to embed topics for retrieval."""
        d = Path(directory)
        if not (d / CONFIG).is_file() or not (d / WEIGHTS).is_file():
            raise FileNotFoundError(f"{d}: not a neural policy checkpoint ({CONFIG} and {WEIGHTS} expected)")
        meta = json.loads((d / CONFIG).read_text(encoding="utf-8"))
        if meta.get("backend") != "neural":
            raise ValueError(f"{d / CONFIG}: backend is {meta.get('backend')!r}, expected 'neural'")
        config = NeuralPolicyConfig.model_validate(meta["config"])
        net = PolicyNet(config)
        state = load_file(str(d / WEIGHTS))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{d / WEIGHTS}: missing tensors {missing}, unexpected tensors {unexpected}")
        pool = RetrievalPool.load(d / POOL_DIR) if (d / POOL_DIR).is_dir() else None
        if encoder is not None and pool is not None and pool.encoder and encoder.name != pool.encoder:
            raise ValueError(
                f"{d}: the retrieval pool was embedded with {pool.encoder!r}, got encoder {encoder.name!r}"
            )
        return cls(config, net, pool, encoder, top_k=int(meta.get("top_k", 16)), training=meta.get("training", {}))


def load_policy_meta(directory: str | Path) -> dict:
    """policy.json of a checkpoint directory (backend, config, encoder, training)."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a policy checkpoint")
    return json.loads(path.read_text(encoding="utf-8"))
