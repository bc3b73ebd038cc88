#!/usr/bin/env bash
# Installs what the tests need, then runs lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"; python3 -m ruff check connector tests bench docs/examples
echo "== mypy"; python3 -m mypy
echo "== pytest"; python3 -m pytest -q "$@"
