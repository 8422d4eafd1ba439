#!/usr/bin/env bash
# The test command: set up .venv, then run the whole suite against a real Kafka broker
# (NEWSWATCH_KAFKA_BOOTSTRAP if set, otherwise one started for the session on free ports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
