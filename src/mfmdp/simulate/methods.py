"""Methods as configurations of the one loop (never string switches scattered through the code).

A `MethodSpec` says which trained parts a method needs and how the loop is wired: the policy's
inputs (prior m^_t, context), whether its policy was trained with L_pred (LCT-Policy), which
transition model it uses (with or without L_roll: LCT-State), how many candidates it reselects
among, and where its agents' profiles come from. Floors are not agent methods: they have `floor`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    name: str
    display: str
    group: str  # "baseline" | "ours" | "ablation" | "floor"
    floor: str | None = None  # persistence | transition_only | regression | oracle
    use_prior: bool = True  # q ∝ m^_t * exp(g): needs the transition model
    context: str = "synopsis"  # "synopsis" | "social" | "none"
    lct_policy: bool = True  # policy trained with L_pred + alpha L_text (else L_text only)
    lct_state: bool = True  # transition trained with L_seq + alpha L_roll (else L_seq only)
    reselect: bool = True  # J candidates scored by K-step rollouts (else J = 1)
    pool: str = "arrivals"  # "arrivals" | "warmup"

    @property
    def needs_transition(self) -> bool:
        return self.floor == "transition_only" or (self.floor is None and (self.use_prior or self.reselect))

    @property
    def policy_key(self) -> tuple:
        """Methods sharing this key share one trained policy."""
        return (self.use_prior, self.context, self.lct_policy, self.lct_state)


_BASE = dict(use_prior=False, lct_policy=False, reselect=False)
METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("direct", "Direct", "baseline", context="none", **_BASE),
        MethodSpec("social_retrieval", "Social Retrieval", "baseline", context="social", **_BASE),
        MethodSpec("mf_llm", "mf-synopsis (embedding)", "baseline", context="synopsis", **_BASE),
        MethodSpec("mf_mdp", "MF-MDP", "ours"),
        MethodSpec("no_lct_state", "w/o LCT-State", "ablation", lct_state=False),
        MethodSpec("no_lct_policy", "w/o LCT-Policy", "ablation", lct_policy=False),
        MethodSpec("no_sampling", "w/o Sampling", "ablation", reselect=False),
        MethodSpec("pool_resampled", "pool resampled", "ablation", pool="warmup"),
        MethodSpec("persistence", "Persistence", "floor", floor="persistence", **_BASE),
        MethodSpec("transition_only", "Transition only", "floor", floor="transition_only", **_BASE),
        MethodSpec("regression", "Regression (ridge)", "floor", floor="regression", **_BASE),
        MethodSpec("oracle", "Oracle", "floor", floor="oracle", **_BASE),
    ]
}
ALL_METHODS: tuple[str, ...] = tuple(METHODS)


def get_method(name: str, llm_summariser: bool = False) -> MethodSpec:
    try:
        spec = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
    if name == "mf_llm" and llm_summariser:
        from dataclasses import replace

        spec = replace(spec, display="MF-LLM")
    return spec
