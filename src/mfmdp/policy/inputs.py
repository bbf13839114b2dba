"""Which inputs a policy sees: baselines are configurations of the same network, not other code.

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


# mf_mdp's policy reads only c_t's pulse: f_psi's prior m^_t already carries a signal's lasting effect,
# and with the memory too the policy overreacted (docs/scenarios.md: held-out long-horizon
# state KL 0.324 vs 0.229 over 5 training seeds, for a similar scenario effect). Methods without the
# prior keep the memory: it is their only way to remember a signal.
_MF_MDP = PolicyInputs(signal_memory=False)
METHOD_INPUTS: dict[str, PolicyInputs] = {
    "direct": PolicyInputs(use_prior=False, context="none"),
    "social_retrieval": PolicyInputs(use_prior=False, context="social"),
    "mf_llm": PolicyInputs(use_prior=False, context="synopsis"),
    "mf_mdp": _MF_MDP,
    "no_lct_state": _MF_MDP,
    "no_lct_policy": _MF_MDP,
    "no_sampling": _MF_MDP,
    "pool_resampled": _MF_MDP,
}


def inputs_for(method: str) -> PolicyInputs:
    """The input configuration a policy-driven method trains and runs with."""
    try:
        return METHOD_INPUTS[method]
    except KeyError:
        raise ValueError(
            f"method {method!r} has no policy inputs; policy-driven methods: {', '.join(METHOD_INPUTS)}"
        ) from None
