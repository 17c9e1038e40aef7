"""Pin every image's Python dependencies: pip resolves each image's requirements, and the versions it picked are
written to docker/requirements-<image>.txt, which `make wheels` downloads and the Dockerfile installs, nothing else.

    python docker/lock.py [IMAGE...]   # after changing pyproject.toml's dependencies; commit the files it writes
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# What each image installs: pip requirement specifiers (the project itself with its extras).
IMAGES = {
    "inference": [".[cpu,api]"],
    "trainer": ["torch==2.13.0", ".[cpu,train]"],  # the CPU wheel of torch, as make install takes it
    "inference-gpu": [".[gpu,api]", "onnxruntime-gpu[cuda,cudnn]"],
    # moto's S3 server: the object store of `make compose-test` where MinIO's image cannot be pulled (not for data)
    "s3-standin": ["moto[server]>=5.1"],
}
PROJECT = "lepton-runtime"
# The images' interpreter: Debian bookworm's python3. Markers are evaluated for it too (redis-py, for one, needs
# async-timeout below Python 3.11.3), whatever Python runs this script.
IMAGE_PYTHON = {"python_full_version": "3.11.2", "python_version": "3.11", "extra": ""}


def resolve(requirements: list[str]) -> list[str]:
    """``name==version`` of every distribution pip would install for ``requirements`` into an empty environment,
    with what the images' interpreter needs besides (resolved again until nothing is missing)."""
    extra: list[str] = []
    while True:
        installed = _report(requirements + extra)
        pinned = {canonicalize_name(item["metadata"]["name"]) for item in installed}
        missing = sorted(
            {
                _without_marker(requirement)  # on this Python the marker may be false: pip would skip it
                for item in installed
                for requirement in map(Requirement, item["metadata"].get("requires_dist") or [])
                if canonicalize_name(requirement.name) not in pinned
                and (requirement.marker is None or requirement.marker.evaluate(IMAGE_PYTHON))
            }
        )
        if not missing:
            break
        extra += missing
    pins = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installed}
    pins.pop(PROJECT, None)  # the project is built from the source, not pinned
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _without_marker(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def _report(requirements: list[str]) -> list[dict[str, Any]]:
    """pip's resolution of ``requirements`` (its --report's ``install`` list)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
             "--report", str(report), *requirements],
            cwd=ROOT, check=True,
        )  # fmt: skip
        installed: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    return installed


def main() -> None:
    chosen = sys.argv[1:] or list(IMAGES)  # a few images by name, or all
    for image in chosen:
        requirements = IMAGES[image]
        pins = resolve(requirements)
        target = ROOT / "docker" / f"requirements-{image}.txt"
        header = f"# The {image} image's Python dependencies, pinned by docker/lock.py from: {' '.join(requirements)}\n"
        target.write_text(header + "\n".join(pins) + "\n")
        print(f"{target.relative_to(ROOT)}: {len(pins)} pins")


if __name__ == "__main__":
    main()
