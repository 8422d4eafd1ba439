#!/usr/bin/env bash
# The run command: set up .venv (package, test tools, broker jars), then run the whole pipeline
# on this machine with `newswatch up` (demo feeds by default; `--config PATH` for your own).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/newswatch up "$@"
