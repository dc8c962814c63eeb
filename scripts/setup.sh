#!/usr/bin/env bash
# Set up capforecast here: system packages (when root on Debian/Ubuntu), a venv in .venv, Python packages.
#   scripts/setup.sh          what `capforecast run` needs (bubblewrap, Docker engine, debootstrap)
#   scripts/setup.sh --test   plus what the test suite needs (Slurm + munge, Chromium)
# On a machine without a CUDA GPU torch comes CPU-only through constraints-cpu.txt; on a GPU node
# the package metadata asks for a plain torch, so pip picks the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

apt_packages=(bubblewrap docker.io debootstrap)
((want_test)) && apt_packages+=(slurm-wlm munge chromium)

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
elif ! command -v bwrap >/dev/null && ! command -v docker >/dev/null; then
  echo "setup: warning: neither bubblewrap nor Docker is installed and I am not root;" \
       "ask an admin for 'apt-get install bubblewrap' (or Docker) — execution needs a sandbox" >&2
fi

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv

constraints=(-c constraints-cpu.txt)
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then constraints=(); fi
extras="test"
stamp=".venv/.capforecast-installed"
want="$(cat pyproject.toml constraints-cpu.txt | sha256sum | cut -c1-16) ${constraints[*]:-gpu} $extras"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check "${constraints[@]}" -e ".[$extras]"
  echo "$want" > "$stamp"
fi
