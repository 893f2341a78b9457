"""A Docker image holding recorded package versions: what `orch reproduce --image` runs in.

`pinned_image(base, recorded, needed)` starts from `base` (an image with the orchestrator
in it, as `orch image build` makes), reads which packages and versions the image holds,
and pins on top of it every recorded package the image holds at another version, and
every package in `needed` (the distributions the rebuilt steps import) it lacks (pip,
setuptools and wheel, the installers, stay the image's own). Wheels
are made on the host with the host's own pip configuration (whatever package index or
mirror this machine is set up with, read by pip at run time) and installed in the image
with `--no-index --no-deps`: the build needs no network and no registry, as in
`orchestrator.execution.image`.

The image is tagged by a hash of the base image's id and the pins, so a second rebuild
of the same record reuses it. An image needing no pins is `base` itself.

Errors are one `ExecutorError` line: the engine unreachable, the base image missing, a
recorded version that cannot be installed (naming the package and version).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ExecutorError

TAG = "orchestrator-pinned"
_TOOLS = {"pip", "setuptools", "wheel"}  # the installers: the image keeps its own
_LIST = (
    "import importlib.metadata as m, json, platform; "
    "print(json.dumps([platform.python_version(), "
    "{d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}]))"
)
DOCKERFILE = """\
FROM {base}
COPY wheels /tmp/wheels
RUN python3 -m pip install --no-cache-dir --no-index --no-deps --find-links /tmp/wheels \\
 {pins} && rm -rf /tmp/wheels
"""


@dataclasses.dataclass(frozen=True)
class Pinned:
    """The image to run in, what was pinned in it, and what it still holds otherwise."""

    image: str
    python: str
    pins: dict[str, str]
    built: bool  # False: reused by its tag, or the base image needed no pins


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _client() -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        first = (str(exc).strip().splitlines() or ["no answer"])[0]
        raise ExecutorError(f"--image needs a Docker engine, and none answers: {first}") from None
    return client


def image_packages(client: Any, image: str) -> tuple[str, dict[str, str]]:
    """(Python version, `{distribution: version}`) of what `image` holds."""
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ExecutorError(
            f"image '{image}' not found; build one with `orch image build --tag {image}`"
        ) from None
    raw = client.containers.run(
        image, ["python3", "-c", _LIST], remove=True, network_disabled=True, user="65534:65534"
    )
    python, packages = json.loads(raw.decode().strip().splitlines()[-1])
    return str(python), dict(packages)


def pins_for(
    recorded: Mapping[str, str], have: Mapping[str, str], needed: set[str]
) -> dict[str, str]:
    """Recorded versions the image must get: those it holds otherwise, and those of
    `needed` (normalised distribution names) it lacks."""
    held = {_norm(n): v for n, v in have.items()}
    out = {}
    for name, version in recorded.items():
        if _norm(name) in _TOOLS:
            continue
        now = held.get(_norm(name))
        if (now is not None and now != version) or (now is None and _norm(name) in needed):
            out[name] = version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def pinned_tag(base_id: str, pins: Mapping[str, str]) -> str:
    text = json.dumps([base_id, sorted(pins.items())])
    return f"{TAG}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _wheel(name: str, version: str, wheels: Path) -> None:
    """The wheel of `name==version`, made with the host's pip and its configuration."""
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels)]
    proc = subprocess.run([*cmd, f"{name}=={version}"], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in lines if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise ExecutorError(f"recorded package {name}=={version} cannot be installed: {why}")


def _build(client: Any, base: str, tag: str, pins: Mapping[str, str]) -> None:
    import docker.errors

    with tempfile.TemporaryDirectory(prefix="orch-pinned-") as tmp:
        ctx = Path(tmp)
        for name, version in pins.items():
            _wheel(name, version, ctx / "wheels")
        pinned = " ".join(f"'{n}=={v}'" for n, v in pins.items())
        (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=base, pins=pinned))
        try:
            client.images.build(path=str(ctx), tag=tag, rm=True, network_mode="none")
        except docker.errors.BuildError as exc:
            log = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)
            last = (log.strip().splitlines() or [str(exc)])[-1]
            raise ExecutorError(
                f"the image with the recorded versions failed to build: {last}"
            ) from None


def pinned_image(
    base: str,
    recorded: Mapping[str, str],
    needed: set[str],
    log: Callable[[str], object] = print,
) -> Pinned:
    """The image to rebuild in (see the module doc): reused by its tag, or built now."""
    import docker.errors

    client = _client()
    python, have = image_packages(client, base)
    pins = pins_for(recorded, have, {_norm(n) for n in needed})
    if not pins:
        return Pinned(base, python, {}, built=False)
    tag = pinned_tag(str(client.images.get(base).id), pins)
    try:
        client.images.get(tag)
        return Pinned(tag, python, pins, built=False)
    except docker.errors.ImageNotFound:
        pass
    log(f"building image {tag} from {base}: " + ", ".join(f"{n}=={v}" for n, v in pins.items()))
    _build(client, base, tag, pins)
    return Pinned(tag, python, pins, built=True)
