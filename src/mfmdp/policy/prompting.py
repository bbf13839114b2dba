"""The LLM policy's prompt and action format: ONE template file (mfmdp/prompts/policy.txt) shared by
training, simulation and every LLM backend (HF + LoRA, OpenAI-compatible).

The file's header names the state words (aligned with STATES), the behavior words (aligned with
BEHAVIORS) and the action format; its body is the per-agent prompt. An action is written as
"状态：<state word> | 行为：<behavior word> | 内容：<text>": state first, then behavior, then text, so
that q(y | z) and pi(b | y, z) can be read off the model's next-token distributions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from mfmdp.core.schema import DIMENSIONS, STATES
from mfmdp.core.records import PROFILE_FEATURES
from mfmdp.llm.prompts import PromptTemplate, load_prompt
from mfmdp.policy.base import StepContext
from mfmdp.policy.inputs import PolicyInputs

BEIJING = timezone(timedelta(hours=8))
_FIELD = re.compile(r"\$(state|behavior|text)")
_PF = {name: i for i, name in enumerate(PROFILE_FEATURES)}


def describe_profile(p: np.ndarray | None) -> str:
    """A short Chinese description of a PROFILE_FEATURES vector (what the LLM sees of an agent)."""
    if p is None or len(p) != len(PROFILE_FEATURES) or p[_PF["has_profile"]] < 0.5:
        return "普通用户（资料未知）"
    parts = []
    if p[_PF["verified_org"]] > 0.5:
        parts.append("认证机构账号")
    elif p[_PF["verified_person"]] > 0.5 or p[_PF["verified"]] > 0.5:
        parts.append("认证个人用户")
    else:
        parts.append("普通用户")
    if p[_PF["gender_m"]] > 0.5:
        parts.append("男")
    elif p[_PF["gender_f"]] > 0.5:
        parts.append("女")
    followers = int(round(math.expm1(float(p[_PF["log_followers"]]) * 10.0)))
    parts.append(f"粉丝{followers}")
    return "，".join(parts)


def describe_time(ctx: StepContext, i: int) -> str:
    if ctx.seconds is not None and i < len(ctx.seconds) and np.isfinite(ctx.seconds[i]):
        return datetime.fromtimestamp(float(ctx.seconds[i]), tz=BEIJING).strftime("%Y-%m-%d %H:%M")
    return f"第{ctx.t}步"


@dataclass(frozen=True)
class ActionFormat:
    """The action string split around its three fields: head $state mid $behavior tail $text end."""

    head: str
    mid: str
    tail: str
    end: str
    state_words: tuple[str, ...]
    behavior_words: tuple[str, ...]

    @classmethod
    def from_template(cls, t: PromptTemplate) -> "ActionFormat":
        fmt = t.header("action")
        parts = _FIELD.split(fmt)
        if parts[1::2] != ["state", "behavior", "text"]:
            raise ValueError(f"prompt file {t.path}: action format must contain $state, $behavior, $text in "
                             f"that order, got {fmt!r}")
        states = tuple(w.strip() for w in t.header("states").split(","))
        behaviors = tuple(w.strip() for w in t.header("behaviors").split(","))
        if len(states) != len(STATES) or len(set(states)) != len(states):
            raise ValueError(f"prompt file {t.path}: need {len(STATES)} distinct state words for {STATES}")
        if len(behaviors) != len(DIMENSIONS["behavior"]) or len(set(behaviors)) != len(behaviors):
            raise ValueError(f"prompt file {t.path}: need distinct behavior words for {DIMENSIONS['behavior']}")
        return cls(parts[0], parts[2], parts[4], parts[6], states, behaviors)

    def render(self, state: int, behavior: int, text: str) -> str:
        return f"{self.head}{self.state_words[state]}{self.mid}{self.behavior_words[behavior]}{self.tail}{text}{self.end}"

    def parse(self, s: str) -> tuple[int | None, int | None, str]:
        """(state code, behavior code, text) of a generated action; None where a field is unreadable."""
        s = s.strip()

        def find(words: tuple[str, ...], after: str) -> int | None:
            k = s.find(after.strip()) if after.strip() else 0
            seg = s[k + len(after.strip()):] if k >= 0 else s
            hits = [(seg.find(w), i) for i, w in enumerate(words) if seg.find(w) >= 0]
            return min(hits)[1] if hits else None

        state = find(self.state_words, self.head)
        behavior = find(self.behavior_words, self.mid)
        k = s.find(self.tail.strip()) if self.tail.strip() else -1
        text = s[k + len(self.tail.strip()):].strip() if k >= 0 else ""
        if self.end and text.endswith(self.end.strip()):
            text = text[: len(text) - len(self.end.strip())].strip()
        return state, behavior, text.split("\n", 1)[0].strip()


class PolicyPrompter:
    """Renders the per-agent prompt from a StepContext under a PolicyInputs configuration."""

    def __init__(self, inputs: PolicyInputs | None = None, prompt_path: str | None = None,
                 max_field_chars: int = 300) -> None:
        self.template = load_prompt("policy", prompt_path)
        self.action = ActionFormat.from_template(self.template)
        self.inputs = inputs or PolicyInputs()
        self.max_field_chars = max_field_chars

    @property
    def id(self) -> str:
        return self.template.id

    def _cut(self, s: str) -> str:
        s = (s or "").replace("\n", " ").strip()
        return s if len(s) <= self.max_field_chars else s[: self.max_field_chars - 1] + "…"

    def prompt(self, ctx: StepContext, i: int) -> str:
        inp = self.inputs
        synopsis = self._cut(ctx.synopsis_text) or "暂无" if inp.context != "none" else "（不提供）"
        signals = "；".join(ctx.signal_texts) if inp.use_signals and ctx.signal_texts else "无"
        profile = describe_profile(ctx.profiles[i]) if inp.use_profiles and len(ctx.profiles) else "未知"
        if inp.use_own_history:  # the agent's own earlier response in the event, as the neural policy reads it
            profile += "；" + self.describe_history(ctx, i)
        return self.template.render(topic=self._cut(ctx.topic), synopsis=synopsis,
                                    signals=self._cut(signals), profile=profile, time=describe_time(ctx, i))

    def describe_history(self, ctx: StepContext, i: int) -> str:
        own = ctx.own_previous
        if own is None or i >= len(own) or own[i] < 0:
            return "此前未在本事件中发言"
        return f"此前在本事件中的状态：{self.action.state_words[int(own[i])]}"

    def prompts(self, ctx: StepContext) -> list[str]:
        return [self.prompt(ctx, i) for i in range(len(ctx.profiles))]
