"""`mfmdp` command line: one sub-command group per stage, each in its own module."""

from __future__ import annotations

import logging

import typer

from mfmdp.cli import annotate, data, demo, evaluate, run, simulate, synthetic, train

app = typer.Typer(
    name="mfmdp",
    help="MF-MDP long-horizon social simulation: data, annotation, training, simulation, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data.app.command("synth")(synthetic.synth)
app.add_typer(data.app, name="data", help="Load, inspect, convert and split event data.")
app.add_typer(annotate.app, name="annotate", help="Annotate responses on the 8 dimensions; score annotators.")
app.add_typer(train.app, name="train", help="Train the transition model and the policy.")
app.command("simulate")(simulate.simulate)
app.command("whatif-check")(simulate.whatif_check)
app.command("evaluate")(evaluate.evaluate)
app.command("run")(run.run)
app.command("demo")(demo.demo)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()
