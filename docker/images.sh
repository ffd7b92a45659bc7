#!/usr/bin/env bash
# Build every image the stack runs (`make images`): the upstream base images, or stand-ins
# where none can be pulled (docker/standins/build.sh), then the trainer, the MLflow server and
# Locust (docker compose build), then the Bento (`bentoml containerize`) when the BentoML store
# has a titanic model to build it from. Prints what it did per image.
#
#   docker/images.sh            # everything
#   docker/images.sh --no-bento # all but the Bento image
set -euo pipefail
cd "$(dirname "$0")/.."
compose="${COMPOSE:-.venv/bin/docker-compose}"
bentoml="${BENTOML:-.venv/bin/bentoml}"
started=$SECONDS

docker/standins/build.sh

# Compose interpolates the whole file, secrets included, even to build; no build uses them,
# so placeholders stand in for the ones .env does not set yet.
for secret in POSTGRES_PASSWORD MINIO_ROOT_PASSWORD LIFEBOAT_ADMIN_TOKEN GRAFANA_ADMIN_PASSWORD; do
  export "$secret=${!secret:-unused-by-builds}"
done
export LIFEBOAT_GIT_COMMIT="${LIFEBOAT_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
# This Compose (2.40 without buildx) exits 0 when a build fails: what it printed decides.
build() {
  local log
  log="$(mktemp)"
  "$compose" "$@" 2>&1 | tee "$log" >&2
  if grep -q "failed to solve" "$log"; then
    echo "[images] FAILED: docker compose $*" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}
build build trainer mlflow locust
# Airflow's image (profile `airflow`) starts FROM the trainer's, so it is built after it.
build --profile airflow build airflow

if [[ "${1:-}" == --no-bento ]]; then
  echo "[images] Bento image: skipped (--no-bento)" >&2
elif "$bentoml" models get titanic:latest >/dev/null 2>&1; then
  # BentoML's generated Dockerfile, built by Docker's classic builder: BuildKit through this
  # Docker CLI needs the buildx plugin, which not every Docker install has.
  "$bentoml" build >/dev/null
  DOCKER_BUILDKIT=0 "$bentoml" containerize titanic_survival:latest \
    -t "titanic_survival:${BENTO_TAG:-latest}" >/dev/null
  echo "[images] Bento image: titanic_survival:${BENTO_TAG:-latest}" >&2
else
  echo "[images] Bento image: skipped, no titanic model in the BentoML store yet:" \
    "train (docker compose run --rm trainer), then make bento-image" >&2
fi
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' \
  | grep -E '^(lifeboat-|titanic_survival:)' >&2 || true
echo "[images] done in $((SECONDS - started)) s" >&2
