"""The stand-in base images cover every upstream image the stack needs, and say what they are.

Static checks (no Docker); tests/containers builds and runs them.
"""

from __future__ import annotations

import re

import yaml

from service import TitanicSurvival
from tests.harness import ROOT

STANDINS = ROOT / "docker" / "standins"
# Not Debian packages, so no stand-in: the stack test overrides MinIO and mc with moto, and
# checks Grafana's dashboard against Prometheus instead of running Grafana.
WITHOUT_STANDIN = ("quay.io/minio/minio:", "quay.io/minio/mc:", "grafana/grafana:")


def standin_table() -> dict[str, str]:
    """build.sh's tag → folder table."""
    script = (STANDINS / "build.sh").read_text()
    block = script[script.index("images=(") : script.index(")\n", script.index("images=("))]
    return dict(re.findall(r'"([^"=]+)=([^"]+)"', block))


def upstream_images() -> set[str]:
    """Every image the stack pulls: compose's `image:` of unbuilt services, every FROM of the
    project's own Dockerfiles, and the Bento's base image."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {
        service["image"]
        for service in compose["services"].values()
        if "image" in service and "build" not in service and "pull_policy" not in service
    }
    # A FROM ${ARG} whose compose build argument names an image the stack builds itself
    # (airflow's starts from the trainer's) pulls nothing.
    built = {
        service["image"].split(":")[0]
        for service in compose["services"].values()
        if "image" in service and "build" in service
    }
    own_bases = {
        f"${{{name}}}"
        for service in compose["services"].values()
        for name, value in (service.get("build", {}).get("args") or {}).items()
        if str(value).split(":")[0] in built
    }
    for dockerfile in (ROOT / "docker").glob("*/Dockerfile"):
        if dockerfile.parent.name != "standins":
            found = set(re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M))
            images |= found - own_bases
    images.add(TitanicSurvival.image.base_image)  # the Bento's, declared on the service
    return images


def test_every_upstream_image_has_a_stand_in_or_a_stated_reason():
    table = standin_table()
    missing = {
        image
        for image in upstream_images()
        if image not in table and not image.startswith(WITHOUT_STANDIN)
    }
    assert not missing, f"no stand-in in docker/standins/build.sh for {sorted(missing)}"


def test_stand_ins_are_labelled_headed_and_built_in_order():
    table = standin_table()
    order = list(table)
    for tag, folder in table.items():
        if folder == "debootstrap":  # built by build.sh itself, labelled by `docker import`
            script = (STANDINS / "build.sh").read_text()
            assert "org.lifeboat.standin=true" in script
            continue
        dockerfile = (STANDINS / folder / "Dockerfile").read_text()
        assert dockerfile.startswith(f"# STAND-IN for {tag}, for machines without an image")
        assert "org.lifeboat.standin=true" in dockerfile
        assert f"org.lifeboat.standin.for={tag}" in dockerfile
        (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
        assert order.index(base) < order.index(tag), f"{tag} is built before its base {base}"


def test_build_script_keeps_present_images_and_never_pushes():
    script = (STANDINS / "build.sh").read_text()
    assert "docker image inspect" in script.replace('"$docker"', "docker")
    assert not re.search(r"\bpush\b", re.sub(r"#.*", "", script))
