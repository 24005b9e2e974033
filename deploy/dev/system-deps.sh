#!/usr/bin/env bash
# Install the Debian packages a make target needs, only when they are missing.
#   system-deps.sh run    python venv support, redis-server, Node/npm (the video SDK the join page serves)
#   system-deps.sh test   + PostgreSQL, Chromium, promtool and wrk (make test, CI: tests/test_benchmarks.py runs
#                         every benchmark at a small size)
#   system-deps.sh bench  + PostgreSQL and wrk (make bench)
set -euo pipefail
target=${1:-run}
missing=()

have_cmd() { command -v "$1" >/dev/null 2>&1; }
want() { missing+=("$@"); }

python3.11 -c 'import ensurepip, venv' 2>/dev/null || want python3.11-venv
have_cmd redis-server || want redis-server
have_cmd npm || want nodejs npm
if [[ $target == test || $target == bench ]]; then
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || want postgresql
fi
if [[ $target == test ]]; then
  [[ -x /usr/bin/chromium ]] || want chromium
  # promtool checks and unit-tests deploy/alerts.yaml (tests/deploy).
  have_cmd promtool || want prometheus
fi
if [[ $target == test || $target == bench ]]; then
  have_cmd wrk || want wrk
fi

((${#missing[@]} == 0)) && exit 0
echo "Installing Debian packages: ${missing[*]}" >&2
if [[ $(id -u) == 0 ]]; then
  apt=(apt-get)
elif have_cmd sudo && sudo -n true 2>/dev/null; then
  apt=(sudo apt-get)
else
  echo "Please install them first: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
