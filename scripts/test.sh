#!/usr/bin/env bash
# Installs what the tests need, then runs lint, type checks and the whole test suite.
# The suite starts its own PostgreSQL server on loopback; this only makes sure the server
# programs are on the machine (Debian's postgresql package).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
    echo "== installing PostgreSQL (Debian package postgresql)"
    sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# The Debian package's test (tests/packaging) builds it with debhelper around a venv of
# Debian's python3.11, checks it with lintian and installs it into a debootstrapped root.
# The console's browser test (tests/console/test_browser.py) drives Debian's chromium
# through Debian's chromium-driver: never a downloaded browser.
missing=()
for pkg in debhelper python3.11-venv debootstrap lintian systemd chromium chromium-driver; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (Debian packages)"
    sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"; python3 -m ruff check connector tests bench docs/examples
python3 -m ruff format --check connector tests bench docs/examples
echo "== import contract"; lint-imports --no-cache
echo "== mypy"; python3 -m mypy
echo "== pytest"; NCB_TEST_POSTGRES=required python3 -m pytest -q "$@"
