#!/usr/bin/env bash
# Create (or refresh) .venv with newswatch and its test tools, and fetch the Kafka broker jars.
# Sourced by scripts/test.sh and scripts/run.sh; needs Python >= 3.11 and Java >= 17.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/newswatch kafka fetch
