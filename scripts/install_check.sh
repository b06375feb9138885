#!/usr/bin/env bash
# Builds the wheel, installs it (not editable) into a fresh virtual environment in a temporary
# directory, and runs finmon from an empty directory there: the migrations and the default
# model must come from the installed package, the config from the built-in defaults.
#
# The venv is made with --system-site-packages so that torch and the other locked
# dependencies already installed here are reused instead of downloaded again (torch alone is
# hundreds of MB); finmon itself is installed into the venv, which comes first on sys.path,
# and the check below fails if any finmon package is imported from anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
work=$(mktemp -d -t finmon-install-XXXXXX)
trap 'rm -rf "$work"' EXIT

$PY -m pip wheel --disable-pip-version-check -q --no-deps --no-build-isolation -w "$work/dist" .
$PY -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt \
  "$work"/dist/finmon-*.whl

mkdir "$work/empty"
cd "$work/empty"
export PATH="$work/venv/bin:$PATH"
unset FINMON_CONFIG PYTHONPATH
python - "$work/venv" <<'PYEOF'
import sys
from pathlib import Path

import alerts, finmon, monitor, pipelines  # noqa: E401
from monitor.resources import bundled_artifact, migrations_dir

venv = Path(sys.argv[1]).resolve()
for module in (finmon, monitor, pipelines, alerts):
    where = Path(module.__file__).resolve()
    assert venv in where.parents, f"{module.__name__} imported from {where}, not the wheel"
for path in (bundled_artifact(), migrations_dir()):
    assert venv in path.resolve().parents and path.is_dir(), f"{path} is not in the wheel"
print("finmon imported from the wheel:", Path(monitor.__file__).parent)
PYEOF
set -x
finmon db upgrade
finmon sample feed.jsonl --hours 0.5 --per-hour 60
finmon replay feed.jsonl --quiet
finmon classify "Fed raises rates by 25 basis points" "\$ACME shares plunge after fraud probe"
finmon worker --help >/dev/null
test -f var/finmon.sqlite3
