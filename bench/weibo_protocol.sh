#!/usr/bin/env bash
# BENCHMARKS.md end to end on ../shared/data: distilled annotator, validation run (trains every model),
# test run with those models, offline-annotator robustness run, tables. About 2 hours on 2 cores.
# Finished stages are reused: every `mfmdp run` resumes its directory. Activate the project's
# environment first (mfmdp and python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results

[ -f runs/annotator/config.json ] ||
  mfmdp annotate distill ../shared/data/annotations/silver_train.jsonl ../shared/data/annotations/silver_more.jsonl \
    --out runs/annotator
mfmdp run experiments/weibo.yaml --out runs/weibo-val --set data.evaluate_on=validation --set 'simulation.seeds=[0]'
mfmdp run experiments/weibo.yaml --out runs/weibo-test --models-from runs/weibo-val
python bench/weibo_tables.py runs/weibo-test --json bench/results/weibo_tables_test.json \
  > bench/results/weibo_tables_test.md
mfmdp run experiments/weibo.yaml --out runs/weibo-offline --set annotator=offline --set 'simulation.seeds=[0]' \
  --set 'methods=[direct,social_retrieval,mf_llm,mf_mdp,persistence,transition_only,regression]'
python bench/weibo_tables.py runs/weibo-offline --json bench/results/weibo_tables_offline.json \
  > bench/results/weibo_tables_offline.md
echo "tables: bench/results/weibo_tables_test.md, bench/results/weibo_tables_offline.md"
