# Sourced by scripts/run and scripts/test: make .venv and install the project into it.
# Quick when nothing changed (a stamp records what was installed).  Usage: ensure_venv EXTRA
ensure_venv() {
  local extra="${1:-}" venv="$ROOT/.venv" spec="$ROOT" stamp
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "heygen-bridge needs Python >= 3.11 (python3 is $(python3 -V 2>&1))" >&2
      exit 1
    fi
    if ! python3 -m venv "$venv" 2>/dev/null; then
      rm -rf "$venv"
      as_root apt-get install -y -qq --no-install-recommends python3-venv
      python3 -m venv "$venv"
    fi
  fi
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  stamp="$venv/.installed-$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}

# Run a command as root: directly when we are root (CI), else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are missing (one apt-get update, only when needed).
ensure_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
