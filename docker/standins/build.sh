#!/usr/bin/env bash
# Make sure every upstream base image the stack needs exists locally. For machines without an
# image registry: an image that is present is kept; one that can be pulled is pulled; only one
# that can be neither is built here as a STAND-IN under the same tag, from Debian's packages
# and PyPI (see README.md beside this file). Stand-ins are never pushed.
#
#   docker/standins/build.sh            # all of them
#   docker/standins/build.sh TAG ...    # only these tags
#
# LIFEBOAT_STANDIN_PULL=0 skips the pull attempt (a registry known to be unreachable).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
docker="${DOCKER:-docker}"

# tag → folder of its stand-in, in build order (later ones build FROM earlier ones).
images=(
  "debian:bookworm-slim=debootstrap"
  "python:3.11.14-slim-bookworm=python"
  "locustio/locust:2.47.0=locust"
  "postgres:15-bookworm=postgres"
  "prom/prometheus:v3.5.0=prometheus"
  "prom/pushgateway:v1.11.3=pushgateway"
  "haproxy:2.6-bookworm=haproxy"
)
wanted=("$@")
summary=()

log() { printf '[standins] %s\n' "$*" >&2; }

debian_base() {
  # debootstrap's minimal Debian, trusting this machine's extra CA certificates (a proxy that
  # inspects TLS would otherwise break pip, uv and apt inside every build).
  local tag="$1" root
  command -v debootstrap >/dev/null || {
    log "debootstrap is missing: apt-get install -y debootstrap"
    return 1
  }
  root="$(mktemp -d /var/tmp/lifeboat-debian-XXXXXX)"
  trap 'rm -rf "$root"' RETURN
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    return 1
  }
  rm -f "$root.log"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  # As the official slim image: no docs or man pages, no apt lists in the layer.
  rm -rf "$root"/usr/share/{doc,man,info}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  tar -C "$root" -c . | "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL org.lifeboat.standin=true' \
    --change "LABEL org.lifeboat.standin.for=$tag" \
    --change 'LABEL org.lifeboat.standin.contents="debootstrap --variant=minbase bookworm"' \
    --change 'CMD ["bash"]' \
    - "$tag" >/dev/null
}

for entry in "${images[@]}"; do
  tag="${entry%%=*}" folder="${entry#*=}"
  if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $tag "* ]]; then
    continue
  fi
  if "$docker" image inspect "$tag" >/dev/null 2>&1; then
    kind="present"
    [[ "$("$docker" image inspect -f '{{index .Config.Labels "org.lifeboat.standin"}}' "$tag")" \
      == true ]] && kind="present, STAND-IN"
    summary+=("$(printf '%-32s %s' "$tag" "$kind (kept)")")
    continue
  fi
  if [[ "${LIFEBOAT_STANDIN_PULL:-1}" != 0 ]] && timeout 120 "$docker" pull -q "$tag" >/dev/null 2>&1
  then
    summary+=("$(printf '%-32s %s' "$tag" "pulled from its registry")")
    continue
  fi
  log "$tag cannot be pulled: building a STAND-IN from Debian packages ($folder)"
  started=$SECONDS
  if [[ "$folder" == debootstrap ]]; then
    debian_base "$tag"
  else
    buildlog="$(mktemp)"
    "$docker" build -t "$tag" "$here/$folder" >"$buildlog" 2>&1 || {
      tail -30 "$buildlog" >&2
      exit 1
    }
    rm -f "$buildlog"
  fi
  summary+=("$(printf '%-32s %s' "$tag" "*** STAND-IN built here in $((SECONDS - started)) s ***")")
done

log "base images:"
for line in "${summary[@]}"; do log "  $line"; done
