#!/usr/bin/env bash
# Writes what the images and the Bento install, exported from uv.lock (the one pin set), into
# requirements/ (or the folder given): run it after `uv lock` (`make lock` does both).
# tests/unit/test_dependencies.py fails when a committed file differs from a fresh export.
#   project.txt  the project's dependencies without dev tools: the trainer image (and Airflow's)
#   bento.txt    the dependency group `bento`: the Bento's environment (bentofile.yaml)
#   locust.txt   the dependency group `locust-image`: what the Locust image adds to upstream's
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-requirements}"
uv="${UV:-.venv/bin/uv}"

export_lock() {
  local file="$out/$1"
  shift
  {
    echo "# Generated from uv.lock by requirements/export.sh: do not edit, run \`make lock\`."
    "$uv" export --frozen --quiet --no-header --no-emit-project "$@"
  } >"$file"
}
export_lock project.txt --no-dev
export_lock bento.txt --only-group bento
export_lock locust.txt --only-group locust-image
