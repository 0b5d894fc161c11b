#!/usr/bin/env bash
# Regenerate the figures in docs/img/ from the runs docs/experiments.md and docs/scaling.md report
# (about an hour on 2 cores). Each run uses 2 BLAS threads, the count the reported numbers were
# measured with, so the tables in the docs stay exact; the figures are redrawn by nmref/tiny/plots.py.
# Usage: bash tools/regen_figures.sh [WORKDIR]   (WORKDIR default: runs/figures)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/figures}
mkdir -p "$W"
T="--threads 2 --no-progress"

# docs/experiments.md, "small" preset: loss, flip rate, perplexity
[ -f "$W/small/results.json" ] || nmref experiment --preset small --out "$W/small" $T
cp "$W/small/loss.png" docs/img/small_loss.png
cp "$W/small/flip_rate.png" docs/img/small_flip_rate.png
cp "$W/small/perplexity.png" docs/img/small_perplexity.png

# docs/experiments.md, the TEAL pilot
[ -f "$W/pilot/results.json" ] || nmref experiment --out "$W/pilot" $T --set d_model=32 --set corpus_vocab=2000 \
  --set corpus_branching=16 --set dense_steps=2500 --set retrain_steps=1000 \
  --set 'recipes=["dense","fixed_mask","ast_naive"]' --set ast_alpha=0.03
nmref teal-study "$W/pilot" --threads 2 --no-progress
cp "$W/pilot/teal/teal.png" docs/img/teal_pilot.png

# docs/scaling.md: the scaling study (its section of docs/scaling.md and docs/img/scaling.png)
python benchmarks/scaling_study.py --out "$W/scaling"
# docs/experiments.md, the paper preset's TEAL study
[ -f "$W/paper/results.json" ] || nmref experiment --preset paper --out "$W/paper" $T
nmref teal-study "$W/paper" --threads 2 --no-progress
cp "$W/paper/teal/teal.png" docs/img/teal_paper.png
