"""Methods as configurations of the one loop (never string switches scattered through the code).

A `MethodSpec` is everything a method is: its policy's inputs (prior m^_t, context, signals), whether
its policy was trained with L_pred (LCT-Policy), which transition model it uses (with or without
L_roll: LCT-State), how many candidates it reselects among, where its agents come from, the tables it
is reported in and its display name. A floor is not an agent method: its `floor` is the object that
produces its labels (simulate/floors.py). Adding a method is adding one entry to METHODS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mfmdp.policy.inputs import PolicyInputs
from mfmdp.simulate import floors
from mfmdp.simulate.floors import Floor

# mf_mdp's policy reads only c_t's pulse: f_psi's prior m^_t already carries a signal's lasting effect,
# and with the memory too the policy overreacted (docs/scenarios.md: held-out long-horizon state KL
# 0.324 vs 0.229 over 5 training seeds, for a similar scenario effect). Methods without the prior keep
# the memory: it is their only way to remember a signal.
MF_MDP_INPUTS = PolicyInputs(signal_memory=False)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    display: str
    tables: tuple[int, ...]  # the report tables it is a row of: 1 (methods and floors), 2 (ablations)
    inputs: PolicyInputs | None = MF_MDP_INPUTS  # None: no policy (a floor)
    floor: Floor | None = None  # what produces a floor's labels instead of agents
    lct_policy: bool = True  # policy trained with L_pred + alpha L_text (else L_text only)
    lct_state: bool = True  # transition trained with L_seq + alpha L_roll (else L_seq only)
    reselect: bool = True  # J candidates scored by K-step rollouts (else J = 1)
    pool: str = "arrivals"  # "arrivals" | "warmup"

    @property
    def use_prior(self) -> bool:
        """q ∝ m^_t * exp(g): the policy needs f_psi's forecast."""
        return self.inputs is not None and self.inputs.use_prior

    @property
    def context(self) -> str:
        return self.inputs.context if self.inputs is not None else "none"

    @property
    def needs_transition(self) -> bool:
        if self.floor is not None:
            return self.floor.needs_transition
        return self.use_prior or self.reselect

    @property
    def policy_key(self) -> tuple:
        """Methods sharing this key share one trained policy."""
        return (self.inputs, self.lct_policy, self.lct_state)


_BASE = dict(lct_policy=False, reselect=False)
_FLOOR = dict(tables=(1,), inputs=None, **_BASE)
METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("direct", "Direct", (1,), PolicyInputs(use_prior=False, context="none"), **_BASE),
        MethodSpec("social_retrieval", "Social Retrieval", (1,), PolicyInputs(use_prior=False, context="social"),
                   **_BASE),
        MethodSpec("mf_llm", "mf-synopsis (embedding)", (1,), PolicyInputs(use_prior=False, context="synopsis"),
                   **_BASE),
        MethodSpec("mf_mdp", "MF-MDP", (1, 2)),
        MethodSpec("no_lct_state", "w/o LCT-State", (2,), lct_state=False),
        MethodSpec("no_lct_policy", "w/o LCT-Policy", (2,), lct_policy=False),
        MethodSpec("no_sampling", "w/o Sampling", (2,), reselect=False),
        MethodSpec("pool_resampled", "pool resampled", (2,), pool="warmup"),
        # issue 13: per-agent evidence; each agent also reads its own earlier response in the event
        MethodSpec("own_history", "+ own history", (2,), MF_MDP_INPUTS.model_copy(update={"use_own_history": True})),
        MethodSpec("persistence", "Persistence", floor=floors.Persistence(), **_FLOOR),
        MethodSpec("transition_only", "Transition only", floor=floors.TransitionOnly(), **_FLOOR),
        MethodSpec("regression", "Regression (ridge)", floor=floors.Regression(), **_FLOOR),
        MethodSpec("oracle", "Oracle", floor=floors.Oracle(), **_FLOOR),
    ]
}
ALL_METHODS: tuple[str, ...] = tuple(METHODS)
AGENT_METHODS: tuple[str, ...] = tuple(m for m, s in METHODS.items() if s.floor is None)


def table_methods(table: int) -> tuple[str, ...]:
    """The methods that are rows of report table `table`, in report order."""
    return tuple(m for m, s in METHODS.items() if table in s.tables)


def get_method(name: str, llm_summariser: bool = False) -> MethodSpec:
    try:
        spec = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
    if name == "mf_llm" and llm_summariser:
        spec = replace(spec, display="MF-LLM")
    return spec


def policy_method(name: str) -> MethodSpec:
    """An agent method (one with a policy), or a ValueError naming the ones there are."""
    spec = METHODS.get(name)
    if spec is None or spec.inputs is None:
        raise ValueError(f"method {name!r} has no policy; policy-driven methods: {', '.join(AGENT_METHODS)}")
    return spec
