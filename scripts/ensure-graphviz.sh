#!/usr/bin/env bash
# Make sure Graphviz's `dot` is on PATH: install it with apt-get when possible, else say how.
set -euo pipefail
if command -v dot >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if [ "$SUDO" != "none" ]; then
    echo "Graphviz 'dot' is missing: installing it with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q graphviz >/dev/null 2>&1 || {
      $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q graphviz >/dev/null; }
    command -v dot >/dev/null 2>&1 && exit 0
  fi
fi
cat >&2 <<'MSG'
Graphviz's `dot` program is required and could not be installed automatically. Install it with one of:
  sudo apt-get install graphviz          # Debian / Ubuntu
  brew install graphviz                  # macOS
  conda install -c conda-forge graphviz  # conda
MSG
exit 1
