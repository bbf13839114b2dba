"""The HF causal LM + LoRA policy, for real, on a tiny Qwen2 built from a config + offline tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from mfmdp.policy.base import Policy, StepContext  # noqa: E402
from mfmdp.policy.hf import AgentExample, HFPolicy, HFPolicyConfig  # noqa: E402
from mfmdp.policy.inputs import PolicyInputs  # noqa: E402
from tiny_hf import SAMPLE_TEXTS, TOPIC, build_model_dir, load_model_dir  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: extra torch threads only contend on a shared machine (10x slower measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_model_dir(tmp_path_factory.mktemp("tiny-qwen2"))


def make_policy(model_dir, **kw) -> HFPolicy:
    cfg = HFPolicyConfig(model_path=str(model_dir), lora_r=4, lora_alpha=8, lora_dropout=0.3,
                         max_new_tokens=8, batch_size=4, device="cpu", **kw)
    torch.manual_seed(0)
    return HFPolicy.create(cfg, *load_model_dir(model_dir))


def context(n: int = 3, same_profiles: bool = False, m_hat=(0.2, 0.5, 0.3)) -> StepContext:
    rng = np.random.default_rng(1)
    profiles = np.zeros((n, 10), np.float32)
    if not same_profiles:
        profiles[:, 0] = 1.0
        profiles[:, 1] = rng.uniform(0.1, 0.6, n)
    return StepContext(t=3, topic=TOPIC, m_hat=np.asarray(m_hat), synopsis=np.zeros(4), synopsis_text="大家很愤怒",
                       signal=np.zeros(2), signal_texts=["辟谣"], time=np.zeros(2), profiles=profiles)


def examples(ctx: StepContext) -> list[AgentExample]:
    return [AgentExample(ctx, k % len(ctx.profiles), k % 3, k % 2, SAMPLE_TEXTS[k]) for k in range(6)]


@pytest.fixture(scope="module")
def trained(model_dir):
    """A policy after a few L_text steps (LoRA B is no longer zero, so masks matter)."""
    p = make_policy(model_dir)
    ctx = context()
    losses = p.fit(examples(ctx), epochs=12, lr=2e-2, batch_size=6, seed=0)
    return p, ctx, losses


def test_lora_training_lowers_the_loss(trained):
    _, _, losses = trained
    assert np.mean(losses[-3:]) < losses[0] - 0.5, losses


def test_propose_gives_distributions_and_implements_the_protocol(trained):
    p, ctx, _ = trained
    assert isinstance(p, Policy)
    prop = p.propose(ctx, 4, np.random.default_rng(0))
    assert prop.state_probs.shape == (4, 3, 3)
    np.testing.assert_allclose(prop.state_probs.sum(-1), 1.0, atol=1e-6)
    assert prop.mixes.shape == (4, 3)
    again = p.propose(ctx, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(prop.state_probs, again.state_probs)  # seeded masks: reproducible


def test_candidates_differ_across_masks_and_a_mask_is_shared_by_the_step(trained):
    p, _, _ = trained
    ctx = context(n=4, same_profiles=True)  # identical agents
    q = p.propose(ctx, 3, np.random.default_rng(5)).state_probs
    assert np.abs(q[0] - q[1]).max() > 1e-4 and np.abs(q[1] - q[2]).max() > 1e-4
    # one mask per candidate, shared by all agents: identical agents get identical q within a candidate
    np.testing.assert_allclose(q[:, 0], q[:, 3], atol=1e-6)


def test_prior_combination(model_dir, trained):
    p, ctx, _ = trained
    free = HFPolicy(p.model, p.tok, p.config.model_copy(update={"inputs": PolicyInputs(use_prior=False)}))
    q_prior = p.propose(ctx, 1, np.random.default_rng(2)).state_probs[0]
    q_free = free.propose(ctx, 1, np.random.default_rng(2)).state_probs[0]
    expect = q_free * ctx.m_hat
    expect /= expect.sum(-1, keepdims=True)
    np.testing.assert_allclose(q_prior, expect, atol=1e-5)  # q ∝ m^ exp(g)


def test_realise_samples_from_the_candidate_and_generates_text(trained):
    p, ctx, _ = trained
    big = context(n=6)  # batch_size 4: two generation batches
    prop = p.propose(big, 2, np.random.default_rng(0))
    acts = p.realise(big, prop, 1, np.random.default_rng(3))
    assert acts.states.shape == (6,) and acts.behaviors.shape == (6,) and len(acts.texts) == 6
    assert all(isinstance(t, str) and "\n" not in t for t in acts.texts)
    assert acts.extra["candidate_seed"] == prop.handle["seeds"][1]
    again = p.realise(big, prop, 1, np.random.default_rng(3))
    assert again.texts == acts.texts and (again.states == acts.states).all()


def test_state_probs_torch_is_differentiable(trained):
    p, ctx, _ = trained
    log_q = p.state_log_probs_torch(ctx, candidate_seed=7)
    mix = log_q.exp().mean(0)
    loss = -(torch.tensor([0.1, 0.2, 0.7]) * torch.log(mix)).sum()
    loss.backward()
    grads = [q.grad for n, q in p.model.named_parameters() if "lora_" in n and q.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    p.model.zero_grad()


def test_nll_is_per_token_and_drops_with_training(model_dir, trained):
    p, ctx, _ = trained
    fresh = make_policy(model_dir)
    states, behaviors = np.array([0, 1, -1]), np.array([0, 1, 1])
    texts = SAMPLE_TEXTS[:3]
    after = p.nll(ctx, states, behaviors, texts)
    before = fresh.nll(ctx, states, behaviors, texts)
    assert np.isnan(after[2]) and np.isnan(before[2])
    assert (after[:2] < before[:2]).all()
    # untrained: about log(vocab) per text token, log 3 / log 2 for the two decisions
    assert 2.0 < before[0] < np.log(len(p.tok)) + 1.0
    no_text = p.nll(ctx, states, behaviors)
    assert np.isfinite(no_text[:2]).all()


def test_save_and_reload_gives_identical_outputs(trained, model_dir, tmp_path):
    p, ctx, _ = trained
    p.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert (tmp_path / "adapter" / "hf_policy.json").exists()
    q = HFPolicy.load(tmp_path / "adapter", *load_model_dir(model_dir))
    a = p.propose(ctx, 3, np.random.default_rng(9)).state_probs
    b = q.propose(ctx, 3, np.random.default_rng(9)).state_probs
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(p.nll(ctx, np.array([0, 1, 2]), np.array([1, 0, 1]), SAMPLE_TEXTS[:3]),
                               q.nll(ctx, np.array([0, 1, 2]), np.array([1, 0, 1]), SAMPLE_TEXTS[:3]), atol=1e-6)


def test_one_prompt_file_for_training_and_simulation(model_dir, tmp_path):
    from mfmdp.llm.prompts import load_prompt

    custom = tmp_path / "policy.txt"
    original = load_prompt("policy")
    header = "".join(f"# {k}: {v}\n" for k, v in original.meta)
    custom.write_text(header + "测试模板\n" + original.body, encoding="utf-8")
    p = make_policy(model_dir, prompt_path=str(custom))
    seen: list[str] = []
    render = p.prompter.prompt
    p.prompter.prompt = lambda ctx, i: seen.append(render(ctx, i)) or seen[-1]
    ctx = context(n=2)
    p.fit(examples(ctx)[:2], epochs=1, batch_size=2)
    n_train = len(seen)
    p.propose(ctx, 1, np.random.default_rng(0))
    assert n_train == 2 and len(seen) == 4
    assert seen[0] == seen[2] and seen[0].startswith("测试模板")


def test_state_words_must_start_with_distinct_tokens(model_dir, tmp_path):
    from mfmdp.llm.prompts import load_prompt

    original = load_prompt("policy")
    meta = dict(original.meta)
    meta["states"] = "积极,积累,消极"
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(f"# {k}: {v}\n" for k, v in meta.items()) + original.body, encoding="utf-8")
    with pytest.raises(ValueError, match="distinct tokens"):
        make_policy(model_dir, prompt_path=str(bad))


# --- LCT training of the HF policy ------------------------------------------------------------------
class _StubSession:
    """A stand-in f_psi: forecasts are uniform; a rollout carries the first mix forward (differentiable)."""

    def __init__(self):
        self.t = 0

    def step(self, m_prev, r_prev):
        self.t += 1
        return np.full((1, 3), 1 / 3)

    def rollout_torch(self, m_first, r_frozen, k):
        return m_first[:, None, :].expand(-1, k, -1)


class _StubTransition:
    def session(self, schedule, batch=1):
        return _StubSession()


def _event(n=48, seed=0):
    from datetime import datetime, timedelta, timezone

    from mfmdp.core.schema import Labels
    from mfmdp.core.records import Event, Response, SourcePost

    rng = np.random.default_rng(seed)
    t0 = datetime(2020, 2, 1, tzinfo=timezone.utc)
    responses = [Response(id=f"r{i:03d}", time=t0 + timedelta(minutes=i), user_id=f"u{i}",
                          text=SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)], behavior=("share", "comment")[i % 2])
                 for i in range(n)]
    ev = Event(id="e1", format="test", topic=SourcePost("s", t0, "src", TOPIC), responses=responses)
    states = rng.integers(0, 3, n).astype(np.int8)
    states[::7] = -1
    return ev, Labels({"state": states})


def test_lct_training_sends_the_rollout_cost_into_lora(model_dir):
    from mfmdp.data.stepping import make_steps
    from mfmdp.policy.hf_training import HFTrainConfig, evaluate_hf_policy, prepare_hf_event, train_hf_policy
    from mfmdp.encoders import get_encoder

    ev, labels = _event()
    steps = make_steps(ev, size=8)
    enc = get_encoder("hash")
    emb = enc.encode([r.text for r in ev.responses])
    hev = prepare_hf_event(ev, steps, labels, emb, enc, "synopsis")
    assert len(hev.contexts) == len(steps) and hev.contexts[0].synopsis_text == ""
    assert hev.contexts[2].synopsis_text  # the extractive synopsis of the real steps before
    # each agent's own earlier state reaches the prompt (PolicyPrompter, use_own_history) as in the neural policy
    assert all(np.array_equal(c.own_previous, hev.pev.own_previous[hev.pev.agents(t)])
               for t, c in enumerate(hev.contexts))
    p = make_policy(model_dir)
    before = {n: w.detach().clone() for n, w in p.model.named_parameters() if "lora_B" in n}
    cfg = HFTrainConfig(alpha=0.0, J=2, K=3, starts_per_event=2, lr=1e-2, seed=0)
    hist = train_hf_policy(p, [hev], cfg, _StubTransition(), progress=False)
    assert "l_pred" in hist[0] and np.isfinite(hist[0]["l_pred"])
    changed = [n for n, w in p.model.named_parameters() if "lora_B" in n and not torch.equal(w, before[n])]
    assert changed  # L_pred alone moved the adapter
    with pytest.raises(ValueError, match="transition"):
        train_hf_policy(p, [hev], HFTrainConfig(), None, progress=False)
    report = evaluate_hf_policy(p, [hev], max_agents=10)
    assert report["agents"] == 10 and np.isfinite(report["nll_per_token"]) and 0 <= report["state_macro_f1"] <= 1


def test_hf_chat_backend_generates_in_batches(model_dir):
    from mfmdp.llm.hf import HFChatModel

    model, tok = load_model_dir(model_dir)
    chat = HFChatModel(model, tok, batch_size=2, max_new_tokens=5)
    outs = chat.complete_batch([[{"role": "user", "content": t}] for t in SAMPLE_TEXTS[:3]], temperature=0.0)
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)
    # greedy decoding is deterministic and independent of the batch it ran in
    assert chat.complete([{"role": "user", "content": SAMPLE_TEXTS[2]}]) == outs[2]


def test_train_hf_from_data_end_to_end(model_dir, tmp_path):
    """`mfmdp train policy --backend hf` path: events file -> LoRA adapter -> reload from the dir."""
    from mfmdp.data.generic import write_events
    from mfmdp.data.synthetic import generate_events
    from mfmdp.llm.hf import load_causal_lm
    from mfmdp.simulate.checkpoints import train_policy_checkpoint, without_lct
    from mfmdp.simulate.config import ExperimentConfig
    from mfmdp.simulate.methods import policy_method

    events = generate_events(n_events=4, responses=(48, 64), seed=3)
    data = tmp_path / "events.jsonl"
    write_events(events, data)
    out = tmp_path / "policy_hf"
    cfg = ExperimentConfig.model_validate({"data": {"path": str(data), "min_responses": 32,
                                                    "fractions": [0.5, 0.5, 0.0]}, "annotator": "truth"})
    spec = without_lct(policy_method("direct"))
    report = train_policy_checkpoint(cfg, spec, None, out, backend="hf", progress=False,
                                     hf_overrides={"model_path": str(model_dir), "starts_per_event": 1,
                                                   "text_batch": 4, "lora_r": 4})
    assert report["events"] == 2 and report["history"][0]["l_text"] > 0
    assert (out / "adapter_model.safetensors").exists() and (out / "train_report.json").exists()
    p = HFPolicy.load(out)  # base model and tokenizer from model_path in hf_policy.json
    assert p.config.inputs.use_prior is False
    assert p.propose(context(2), 2, np.random.default_rng(0)).state_probs.shape == (2, 2, 3)
    with pytest.raises(ValueError, match="model_path"):
        train_policy_checkpoint(cfg, spec, None, out, backend="hf", progress=False)
    assert load_causal_lm(model_dir, device="cpu")[1]("积极", add_special_tokens=False)["input_ids"]
