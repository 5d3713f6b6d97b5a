#!/usr/bin/env bash
# Make sure a Chromium for the browser test exists (Debian's `chromium` package): install it with
# apt-get when possible, else say why and how. Playwright drives this binary; it never downloads
# a browser of its own. Exit 1 when there is still no Chromium (tests/test_browser.py then skips
# with this reason).
set -uo pipefail
CHROMIUM="${IRONFORGE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then exit 0; fi
why="apt-get is not available on this machine"
if [ -n "${IRONFORGE_CHROMIUM:-}" ]; then
  why="IRONFORGE_CHROMIUM is set but is not an executable file"
elif command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if [ "$SUDO" = "none" ]; then
    why="installing a package needs root (or password-less sudo)"
  else
    echo "Chromium is missing (for tests/test_browser.py): installing it with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
      $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }
    if [ -x "$CHROMIUM" ]; then exit 0; fi
    why="'apt-get install chromium' failed or did not provide $CHROMIUM"
  fi
fi
echo "Chromium could not be installed at $CHROMIUM: $why. Install it with" \
  "'sudo apt-get install chromium' (Debian / Ubuntu), or set IRONFORGE_CHROMIUM to a" \
  "Chromium binary." >&2
exit 1
