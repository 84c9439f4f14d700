#!/usr/bin/env bash
# Runs the experiment groups in order, each in a new process (so each reads the recipe as it is
# when the group starts); every group resumes where it stopped.
set -u
cd "$(dirname "$0")/.."
for group in "$@"; do
  echo "=== $(date -Is) $group"
  .venv/bin/python scripts/experiments.py "$group" || echo "=== $group failed: $?"
done
echo "=== $(date -Is) done"
