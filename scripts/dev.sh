#!/usr/bin/env bash
# The README's two commands: `bash scripts/dev.sh demo` and `bash scripts/dev.sh test`.
# Both make (or reuse) a virtualenv in .venv first: requirements-dev.txt, then this checkout installed
# in it (`pip install -e .`: the `hotelimages` command and the package, edits seen at once), and a
# .pth file that puts the checkout on the venv's import path, so that benchmarks/ and devtools/ (which
# are not in the wheel) import too: `hotelimages bench`, `hotelimages demo` work from the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HOTELIMAGES_VENV:-.venv}
PY=${PYTHON:-python3}

setup() {
    local stamp="$VENV/.requirements.sha1"
    local want
    # Redo the set-up when a requirements file, pyproject.toml (dependencies, entry points) or the
    # checkout's place changes; code edits need nothing (editable install).
    want=$( (cat requirements*.txt pyproject.toml; pwd) | sha1sum | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "Installing python3-venv with apt-get ..." >&2
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        else
            echo "error: '$PY -m venv' is not available; install python3-venv (Debian) first" >&2
            exit 1
        fi
    fi
    echo "Creating $VENV, installing requirements-dev.txt and this checkout ..." >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
    "$VENV/bin/python" -m pip install -q --no-deps -e .
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    pwd > "$site/hotelimages-checkout.pth"
    echo "$want" > "$stamp"
}

# --- console browser tests: Debian's chromium + chromium-driver (tests/test_console_e2e.py) ---
browser() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing chromium and chromium-driver with apt-get ..." >&2
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "note: chromium/chromium-driver missing and not root: the console's browser test is skipped" >&2
    fi
}
# --- end of the console block ---

cmd=${1:-}
shift || true
case "$cmd" in
    setup) setup ;;
    demo) setup; exec "$VENV/bin/hotelimages" demo "$@" ;;
    test)
        setup
        browser
        "$VENV/bin/ruff" check .
        exec "$VENV/bin/python" -m pytest -q "$@"
        ;;
    *) echo "usage: bash scripts/dev.sh {demo|test|setup} [args...]" >&2; exit 2 ;;
esac
