#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) with `pip install -e ".[dev]"`.
#
# Fast no-op when nothing changed: after a successful install we drop a stamp
# file .venv/.installed-<hash of pyproject.toml>; if it exists we skip pip.
#
# Env overrides:
#   PYTHON=/path/to/python   interpreter used to create the venv (must be 3.11+)
#   VENV=dir                 venv location (default: .venv)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"

hash="$(sha256sum pyproject.toml | cut -c1-16)"
stamp="$VENV/.installed-$hash"

# Fast path: already installed for this exact pyproject.toml.
if [[ -f "$stamp" && -x "$VENV/bin/python" ]]; then
    exit 0
fi

# Serialise concurrent installs (two `make` runs at once): lock the repo dir.
if command -v flock >/dev/null 2>&1; then
    exec 9<.
    flock 9
    # Somebody else may have finished the job while we waited.
    if [[ -f "$stamp" && -x "$VENV/bin/python" ]]; then
        exit 0
    fi
fi

# True if "$1" is a Python >= 3.11.
is_py311plus() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

# Pick an interpreter: $PYTHON, else python3.11, else python3 if it is 3.11+.
pick_python() {
    local cand
    for cand in ${PYTHON:-} python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && is_py311plus "$cand"; then
            echo "$cand"
            return 0
        fi
    done
    echo "error: need Python 3.11+ (tried: ${PYTHON:-} python3.11 python3)" >&2
    return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    echo ">> creating $VENV with $py ($("$py" --version 2>&1))"
    "$py" -m venv "$VENV"
elif ! is_py311plus "$VENV/bin/python"; then
    echo "error: $VENV/bin/python is not Python 3.11+; run 'make clean' first" >&2
    exit 1
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
echo ">> upgrading pip"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo ">> pip install -e .[dev]"
"$VENV/bin/python" -m pip install -e ".[dev]"

# Success: replace any stamp from an older pyproject.toml with the new one.
rm -f "$VENV"/.installed-*
touch "$stamp"
echo ">> $VENV is ready"
