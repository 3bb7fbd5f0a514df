#!/usr/bin/env bash
# Learning-rate / damping sweep (seed 0, 5 epochs) used to pick the settings of experiments.md.
set -euo pipefail
for ds in digits spirals; do
  for lr in 0.01 0.03 0.1 0.3; do
    echo "$ds sgd lr=$lr $(esso-ref train --dataset $ds --optimizer sgd --lr $lr --epochs 5 --json | tail -1)"
  done
  for lr in 0.0003 0.001 0.003 0.01; do
    echo "$ds adam lr=$lr $(esso-ref train --dataset $ds --optimizer adam --lr $lr --epochs 5 --json | tail -1)"
  done
  for cfg in "1 30" "1 10" "1 3" "0.3 1"; do
    set -- $cfg
    echo "$ds esso lr=$1 damping=$2 $(esso-ref train --dataset $ds --optimizer esso --lr $1 --damping $2 --epochs 5 --json | tail -1)"
  done
done
