#!/usr/bin/env bash
# The multilayer NMF benchmark's peer: a checkout of the reference neuralNMF at its pinned commit and a venv
# to run it in (torch, numpy, scipy and what its package imports, at the versions below). Not part of the test suite.
#   bash benchmarks/layers/setup_reference.sh [REPO]     REPO: a git URL or local clone of the reference
# The pinned commit, the venv and the checkout's folder are bench_layers.py's REF_COMMIT, REF_VENV and REF_SRC
# (read from it here); bench_layers.py checks that the checkout is at REF_COMMIT.
set -euo pipefail
REPO_URL="${1:-https://github.com/sishirsubedi/neuralNMF}"
BENCH="$(dirname "$0")/bench_layers.py"
constant() { sed -n "s/^$1 = \(Path(\)\?\"\([^\"]*\)\".*/\2/p" "$BENCH"; }
REF_COMMIT=$(constant REF_COMMIT)
VENV=$(dirname "$(dirname "$(constant REF_VENV)")")
SRC=$(constant REF_SRC)
[ -n "$REF_COMMIT" ] && [ -n "$SRC" ] && [ "$VENV" != . ] || { echo "error: $BENCH: REF_COMMIT / REF_VENV / REF_SRC not found" >&2; exit 1; }
if [ ! -d "$SRC/.git" ]; then
    git clone -q --no-checkout "$REPO_URL" "$SRC"
fi
# HEAD and index at the pinned commit; only the package is written out (its data/ and results/ hold large
# files the benchmark does not use)
git -C "$SRC" reset -q "$REF_COMMIT"
git -C "$SRC" checkout -q -- neuralNMF
if [ ! -x "$VENV/bin/python" ]; then
    python3.11 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q torch==2.13.0 numpy==2.4.6 scipy==1.17.1 pandas==2.3.3 h5py==3.14.0 tables==3.11.1 numba==0.68.1 scikit-learn==1.9.1
echo "reference at $(git -C "$SRC" rev-parse HEAD) in $SRC; venv $VENV"
