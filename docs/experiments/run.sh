#!/usr/bin/env bash
# The runs behind docs/experiments.md (settings from sweep.sh / sweep.txt). About 25 minutes on
# two cores. Outputs: docs/experiments/<name>.{csv,json,png}; then summarise.py writes tables.
set -euo pipefail
cd "$(dirname "$0")"
C="esso-ref compare --seeds 5"
D="--dataset digits --epochs 10 --target 0.97"
$C $D --optimizers esso --damping 10 --label "ESSO structured |H| lam=10" --out digits_esso_abs
$C $D --optimizers esso --damping 10 --method layerwise --label "ESSO layerwise |H| lam=10" --out digits_esso_layerwise
$C $D --optimizers esso --damping 10 --spectral clip --label "ESSO structured clip lam=10" --out digits_esso_clip
$C $D --optimizers esso --damping 10 --spectral none --label "ESSO structured none lam=10" --out digits_esso_none
$C $D --optimizers esso --damping 30 --label "ESSO structured |H| lam=30" --out digits_esso_abs30
$C $D --optimizers sgd --lr 0.03 --label "SGD lr=0.03" --out digits_sgd
$C $D --optimizers adam --lr 0.003 --label "Adam lr=0.003" --out digits_adam
S="--dataset spirals --epochs 20 --target 0.95"
$C $S --optimizers esso --damping 3 --label "ESSO structured |H| lam=3" --out spirals_esso_abs
$C $S --optimizers esso --damping 3 --method layerwise --label "ESSO layerwise |H| lam=3" --out spirals_esso_layerwise
$C $S --optimizers esso --damping 3 --spectral clip --label "ESSO structured clip lam=3" --out spirals_esso_clip
$C $S --optimizers esso --damping 3 --spectral none --label "ESSO structured none lam=3" --out spirals_esso_none
$C $S --optimizers sgd --lr 0.1 --label "SGD lr=0.1" --out spirals_sgd
$C $S --optimizers adam --lr 0.01 --label "Adam lr=0.01" --out spirals_adam
