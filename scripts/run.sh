#!/usr/bin/env bash
# The run command: set up .venv, start the local Kafka broker and check the seed config.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/newswatch kafka start
.venv/bin/newswatch check seeds
