"""Evaluation: windowed and per-step metrics, floors, reversal detection, bootstrap CIs, tables,
plots and the HTML/Markdown report. Entry points: `protocol.evaluate_event`, `report.write_report`."""
