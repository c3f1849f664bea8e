# Sourced by scripts/serve and scripts/test: make .venv with the project installed.
# Re-installs only when pyproject.toml changed, so repeated runs start fast.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COSCRIBE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "coscribe needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1 || echo none))" >&2
    exit 1
fi

bootstrap_python() {
    local extras="$1" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating virtualenv $VENV" >&2
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --progress-bar off --upgrade pip
    fi
    stamp="$VENV/.coscribe-installed-$extras"
    if [ ! -f "$stamp" ] || ! cmp -s "$ROOT/pyproject.toml" "$stamp"; then
        echo "==> installing coscribe${extras:+[$extras]} into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --progress-bar off --disable-pip-version-check \
            -e "$ROOT${extras:+[$extras]}"
        cp "$ROOT/pyproject.toml" "$stamp"
    fi
}

# Build the web editor (web/dist) when it is missing or older than web/'s sources or lockfile;
# `npm ci` first when web/node_modules is missing or older than web/package-lock.json.
build_web() {
    local web="$ROOT/web"
    if ! command -v npm >/dev/null 2>&1; then
        if [ -f "$web/dist/index.html" ]; then
            echo "==> npm not found: serving the existing web/dist as it is" >&2
            return 0
        fi
        echo "npm (Node >= 20) is needed to build the web editor in web/; the API works without it" >&2
        return 1
    fi
    (
        # One build at a time per work tree: parallel test runs share web/.
        exec 9>"$web/.build.lock"
        command -v flock >/dev/null 2>&1 && flock 9
        if [ ! -f "$web/node_modules/.package-lock.json" ] ||
            [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
            echo "==> installing web/ dependencies (npm ci)" >&2
            npm --prefix "$web" ci --no-audit --no-fund --loglevel=error >&2
        fi
        if [ ! -f "$web/dist/index.html" ] || [ -n "$(find "$web/src" "$web/public" \
            "$web/index.html" "$web/vite.config.js" "$web/package.json" "$web/package-lock.json" \
            -newer "$web/dist/index.html" -print -quit 2>/dev/null)" ]; then
            echo "==> building the web editor (web/dist)" >&2
            npm --prefix "$web" run --silent build >&2
        fi
    )
}
