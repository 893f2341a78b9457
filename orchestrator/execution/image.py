"""`orch image build`: a Docker image with the project, its dependencies and the user's code.

Wheels are built on the host with the host's own pip configuration (so whatever package
index or mirror the machine uses applies), copied into the build context, and installed
in the image with `--no-index` into a virtualenv: the build itself needs no network and
no registry. The base image needs Python 3 with venv; `scripts/base-image.sh` makes one
from Debian packages without pulling from any registry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import ExecutorError

DOCKERFILE = """\
FROM {base}
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/orch \\
 && /opt/orch/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels {reqs} \\
 && rm -rf /tmp/wheels
ENV PATH=/opt/orch/bin:$PATH PYTHONDONTWRITEBYTECODE=1
{code}WORKDIR /app
"""


def project_source(extras: tuple[str, ...] = ()) -> str:
    """The folder holding our pyproject.toml for a source checkout, else our requirement;
    with `extras` (`dask`, `postgres`, ...) in brackets."""
    import orchestrator

    root = Path(orchestrator.__file__).resolve().parents[1]
    wanted = f"[{','.join(extras)}]" if extras else ""
    if (root / "pyproject.toml").exists():
        return f"{root}{wanted}"
    return f"orchestrator{wanted}=={orchestrator.__version__}"


def check_extras(extras: tuple[str, ...]) -> None:
    """One clear error for an extra the package does not declare (in the checkout's
    pyproject.toml, else in the installed package's metadata)."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, metadata

    import orchestrator

    pyproject = Path(orchestrator.__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.exists():
        project = tomllib.loads(pyproject.read_text())["project"]
        known = set(project.get("optional-dependencies", {}))
    else:
        try:
            known = set(metadata("orchestrator").get_all("Provides-Extra") or [])
        except PackageNotFoundError:  # pragma: no cover - neither a checkout nor installed
            return
    unknown = [e for e in extras if e not in known]
    if unknown:
        raise ExecutorError(
            f"--extra {unknown[0]}: orchestrator has no such extra "
            f"(choose from {', '.join(sorted(known))})"
        )


def build_image(
    tag: str,
    base: str,
    code: Path | None = None,
    requirements: Path | None = None,
    log: Callable[[str], object] = print,
    extras: tuple[str, ...] = (),
) -> str:
    """Build `tag` from `base`: orchestrator with `extras` (e.g. `dask` for an image a Dask
    worker runs in), the `requirements`, and the folder `code` at /app."""
    check_extras(extras)
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ExecutorError(f"cannot reach the Docker engine: {exc}") from None
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        raise ExecutorError(
            f"base image '{base}' not found; make one with scripts/base-image.sh"
        ) from None
    with tempfile.TemporaryDirectory(prefix="orch-image-") as tmp:
        ctx = Path(tmp)
        wheels = ctx / "wheels"
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--wheel-dir",
            str(wheels),
            project_source(extras),
        ]
        reqs = f"'orchestrator[{','.join(extras)}]'" if extras else "orchestrator"
        if requirements is not None:
            shutil.copy(requirements, ctx / "requirements.txt")
            cmd += ["-r", str(requirements)]
            reqs += " -r /tmp/requirements.txt"
        log(f"building wheels: {' '.join(cmd[3:])}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExecutorError(f"pip wheel failed:\n{proc.stderr[-2000:]}")
        code_step = ""
        if code is not None:
            if not code.is_dir():
                raise ExecutorError(f"--code {code}: not a folder")
            shutil.copytree(
                code,
                ctx / "app",
                ignore=shutil.ignore_patterns(".orchestrator", "__pycache__", ".git", "*.pyc"),
            )
            code_step = "COPY app /app\nENV PYTHONPATH=/app\n"
        dockerfile = DOCKERFILE.format(base=base, reqs=reqs, code=code_step)
        if requirements is not None:
            dockerfile = dockerfile.replace(
                "COPY wheels", "COPY requirements.txt /tmp/\nCOPY wheels"
            )
        (ctx / "Dockerfile").write_text(dockerfile)
        log(f"building image {tag} from {base}")
        try:
            image, _ = client.images.build(path=str(ctx), tag=tag, rm=True, network_mode="none")
        except docker.errors.BuildError as exc:
            lines = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)
            raise ExecutorError(f"docker build failed: {exc}\n{lines[-2000:]}") from None
    return str(image.id)
