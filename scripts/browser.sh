#!/usr/bin/env bash
# The headless browser the browser tests (tests/browser, `pytest -m browser`) drive.
#
# Usage:
#   scripts/browser.sh ensure    install Debian's `chromium` with apt when /usr/bin/chromium is
#                                missing (quiet no-op when it is there), then check it starts
#   scripts/browser.sh version   print the installed chromium's version
#
# Playwright for Python (the `dev` extra) drives this binary through
# executable_path="/usr/bin/chromium"; never run `playwright install` (it downloads a browser
# build of its own, which is not reachable here). `make test` calls `ensure` through
# scripts/test-services.sh. All output goes to stderr.
set -euo pipefail

CHROMIUM="${CYCLEML_CHROMIUM:-/usr/bin/chromium}"

log() { echo "[browser] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The version line, without the Debian launcher's noise on stderr.
chromium_version() {
    "$CHROMIUM" --version 2>/dev/null | head -n 1
}

ensure() {
    if [[ -x "$CHROMIUM" ]]; then
        return 0
    fi
    local how="install Debian's chromium (as root: apt-get update && apt-get install -y --no-install-recommends chromium), or skip these tests with: pytest -m 'not browser'"
    [[ "$(id -u)" == 0 ]] || die "$CHROMIUM is missing and we are not root; $how"
    command -v apt-get >/dev/null 2>&1 || die "$CHROMIUM is missing and apt-get is not available; $how"
    log "installing Debian's chromium with apt-get (the browser tests need $CHROMIUM)"
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "${CYCLEML_APT_UPDATED:-}" ]]; then # test-services.sh may have just run it
        apt-get update -q >&2 || die "apt-get update failed (is a Debian mirror reachable?); $how"
    fi
    apt-get install -y -q --no-install-recommends chromium >&2 ||
        die "apt-get install chromium failed (see above); $how"
    [[ -x "$CHROMIUM" ]] || die "apt-get install chromium did not provide $CHROMIUM; $how"
    local version
    version="$(chromium_version)"
    [[ -n "$version" ]] || die "$CHROMIUM was installed but does not start ($CHROMIUM --version failed)"
    log "installed: $version"
}

case "${1:-}" in
ensure)
    ensure
    ;;
version)
    [[ -x "$CHROMIUM" ]] || die "$CHROMIUM is missing: run $0 ensure"
    chromium_version
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
