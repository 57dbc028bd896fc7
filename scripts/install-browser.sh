#!/bin/sh
# Install what the browser tests need: the system's Chromium (Debian packages chromium and
# chromium-driver) and Playwright's Python package to drive it. Playwright never downloads a
# browser here: the tests launch /usr/bin/chromium. Idempotent; safe to run on every `make test`.
#
#   scripts/install-browser.sh [PYTHON]     (default: .venv/bin/python, else python3)
set -eu

PYTHON="${1:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
CHROMIUM="${ASSAY_CHROMIUM:-/usr/bin/chromium}"
# Playwright must use the system browser; make sure no tool fetches its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

has_playwright() { "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; }

if [ -x "$CHROMIUM" ] && has_playwright; then
    echo "browser tests: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM") and playwright are installed"
    exit 0
fi

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
    else
        echo "browser tests need Chromium at $CHROMIUM; install it with:" >&2
        echo "  sudo apt-get install -y chromium chromium-driver   (Debian/Ubuntu)" >&2
        echo "or point ASSAY_CHROMIUM at a Chromium or Chrome binary." >&2
    fi
fi

if ! has_playwright; then
    "$PYTHON" -m pip install --quiet "playwright>=1.45"
fi

if [ -x "$CHROMIUM" ] && has_playwright; then
    echo "browser tests: ready ($CHROMIUM)"
else
    echo "browser tests will be skipped outside CI (and fail in CI): see the messages above" >&2
fi
