"""Which inputs a policy sees: baselines are configurations of the same network, not other code.
Each method's inputs are part of its MethodSpec (mfmdp.simulate.methods):

- direct:           no prior, no context (profile, signal and time only)
- social_retrieval: "social" context (embedding of the k most recent + k most popular responses,
                    computed by the simulator and passed as `StepContext.synopsis`), no prior
- mf_llm:           synopsis context, no prior (macro text channel only)
- mf_mdp:           everything: f_psi's forecast m^_t as the state prior, synopsis, signals (the pulse
                    of c_t only, see below), profiles
The ablations no_lct_policy / no_sampling keep mf_mdp's inputs (they change training / J only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ContextKind = Literal["synopsis", "social", "none"]


class PolicyInputs(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    use_prior: bool = True  # q(y|z) ∝ m^_t(y) exp(g(y; z)); False: q(y|z) ∝ exp(g(y; z))
    context: ContextKind = "synopsis"  # what `StepContext.synopsis` holds, or "none" (ignored)
    use_signals: bool = True  # c_t, the encoded exogenous signal of the step
    # False: only c_t's one-step pulse, not its decaying signal memory (transition.features.signal_block)
    signal_memory: bool = True
    use_profiles: bool = True  # p_i, the agent's profile features
    # the agent's own earlier response in the event (policy/memory.py): per-agent evidence
    use_own_history: bool = False

