#!/usr/bin/env bash
# Run every benchmark. Each area has its own folder with a requirements.txt of anchors (the
# tools we compare against) and bench_*.py scripts; each area gets its own venv under
# benchmarks/.venvs/<area> with cycleml installed from this checkout plus its anchors, so the
# anchors never enter cycleml's own dependencies. Usage: bash benchmarks/run.sh [AREA ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
areas=("$@")
if [ ${#areas[@]} -eq 0 ]; then
  for dir in benchmarks/*/; do
    [ -f "$dir/requirements.txt" ] && areas+=("$(basename "$dir")")
  done
fi
if [ ${#areas[@]} -eq 0 ]; then
  echo "No benchmarks yet."
  exit 0
fi
python=${PYTHON:-python3.11}
for area in "${areas[@]}"; do
  dir="benchmarks/$area"
  venv="benchmarks/.venvs/$area"
  # -- serve: the load generator is wrk, a Debian package (not a Python one) --
  if [ "$area" = serve ] && ! command -v wrk >/dev/null; then
    echo "== serve: installing wrk (apt-get)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk
    else sudo apt-get update -qq && sudo apt-get install -y -qq wrk; fi
  fi
  # -- end serve --
  stamp="$venv/.installed-$(cat pyproject.toml "$dir/requirements.txt" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "== $area: preparing $venv"
    [ -d "$venv" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e . -r "$dir/requirements.txt"
    touch "$stamp"
  fi
  for script in "$dir"/bench_*.py; do
    echo "== $area: $script"
    "$venv/bin/python" "$script"
  done
done
