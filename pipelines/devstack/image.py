"""The one image, built and run on this machine without a Docker engine (``bin/image``, whose
commands are in ``pipelines.devstack.image_cli``).

- **The base** is Debian 12 (bookworm) slim, which container/Dockerfile names: here it is made
  from Debian's archive by ``mmdebstrap --variant=minbase`` with the slim image's dpkg excludes (no
  docs, man pages or locales), cached as a tarball under ``<cache>/image/`` and imported as
  ``localhost/audience-pipelines-base:bookworm-slim``; the Dockerfile installs Python (Debian's
  python3) on it, as it does on the registry's base.
- **The build** is ``buildah bud --layers --isolation chroot`` of container/Dockerfile with that
  base as ``BASE_IMAGE``, so a layer is rebuilt only when its inputs change. This machine's pip
  configuration (``/etc/pip.conf`` and the CA bundle it names; PyPI is reached through a proxy) is
  mounted read-only into the build's steps; nothing of it is committed.
- **A run** is ``podman run`` with the runtime runc (an OCI runtime, as on Fargate), as the task
  definition in terraform/ecs.tf has it: host network, the image's user (uid 10001), the root file
  system read-only and ``/tmp`` the only writable place, the entrypoint as PID 1 (``podman kill
  --signal TERM`` reaches it, as an ECS stop does). Variables go in by name only (``--env NAME``), so
  no value, a secret included, shows in a command line.
- **Storage** lives under ``<cache>/image/containers`` with configuration files of its own
  (``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF``): the overlay driver where the kernel allows it
  (a run then starts in a fraction of a second), else vfs (every run copies the image).
  ``PIPELINES_IMAGE_STORAGE_DRIVER`` chooses one. crun cannot run here (hybrid cgroups), runc can;
  ulimits are inherited (the defaults podman would set are above this sandbox's hard limits).

``<cache>`` is ``$PIPELINES_CACHE`` or ``~/.cache/audience-pipelines``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

DEFAULT_TAG = "audience-pipelines:dev"
BASE_NAME = "localhost/audience-pipelines-base:bookworm-slim"
DEBIAN_SUITE = "bookworm"
# debian:bookworm-slim's own dpkg excludes (debuerreotype --slimify): no docs but copyrights, no man
# pages, info, locales or lintian files, in the base and in every package the Dockerfile installs.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/lintian/overrides/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/groff/*",
)
# ... and its apt settings (docker-clean, docker-no-languages): no package caches, no translations.
SLIM_APT_OPTIONS = (
    'Dir::Cache::pkgcache ""',
    'Dir::Cache::srcpkgcache ""',
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; }',
    'Acquire::Languages "none"',
)
# What a run passes from the caller's environment: the engine's and the AWS SDK's variables.
PASSED_PREFIXES = ("AWS_", "KAFKA_", "PIPELINES_", "OPENLINEAGE_")
PASSED_NAMES = ("SCHEMA_REGISTRY_URL", "MALLOC_ARENA_MAX")
# ... but not the ones that name a path or a setting of this machine, meaningless inside the image.
HOST_ONLY = frozenset(
    {
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CA_BUNDLE",
        "PIPELINES_CONFIGS",
        "PIPELINES_CACHE",
        "PIPELINES_REPO",
        "PIPELINES_DEV_STATE",
        "PIPELINES_WORKFLOW_LOGS",
        "PIPELINES_WORKFLOW_IMAGE",
        "PIPELINES_IMAGE_STORAGE_DRIVER",
    }
)
REPO = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = REPO / "container" / "Dockerfile"

Log = Callable[[str], None]


class ImageError(Exception):
    """A problem building or running the image, with a message for the user."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- storage


def image_cache() -> Path:
    from pipelines.devstack.downloads import cache_dir

    return cache_dir() / "image"


def storage_driver() -> str:
    """overlay where this kernel mounts it for us (probed once, in a private mount namespace), else vfs."""
    chosen = os.environ.get("PIPELINES_IMAGE_STORAGE_DRIVER")
    if chosen:
        return chosen
    marker = image_cache() / "containers" / "driver"
    if marker.is_file():
        return marker.read_text().strip()
    marker.parent.mkdir(parents=True, exist_ok=True)
    driver = "overlay" if _overlay_mounts(marker.parent) else "vfs"
    marker.write_text(driver + "\n")
    return driver


def _overlay_mounts(where: Path) -> bool:
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        for name in ("lower", "upper", "work", "merged"):
            (Path(tmp) / name).mkdir()
        options = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work"
        probe = ["unshare", "--mount", "mount", "-t", "overlay", "overlay", "-o", options, f"{tmp}/merged"]
        try:
            return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


def container_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
    naming this project's storage and engine settings (written on first use)."""
    root = image_cache() / "containers"
    driver = storage_driver()
    storage_conf, engine_conf = root / f"storage-{driver}.conf", root / "containers.conf"
    if not storage_conf.is_file():
        storage_conf.write_text(f'[storage]\ndriver = "{driver}"\ngraphroot = "{root / driver / "storage"}"\nrunroot = "{_run_root(driver)}"\n')
    if not engine_conf.is_file():
        engine_conf.write_text(
            "[containers]\ndefault_ulimits = []\nlog_driver = \"k8s-file\"\n\n"
            '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        )
    env = dict(os.environ if base is None else base)
    env.update(CONTAINERS_CONF=str(engine_conf), CONTAINERS_STORAGE_CONF=str(storage_conf))
    return env


def _run_root(driver: str) -> Path:
    """Short, as conmon's sockets there must fit a socket address (108 bytes): under the cache, a
    container's exit goes unseen and every run waits out conmon's 20 s timeout."""
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    return base / f"audience-pipelines-{os.getuid()}" / driver


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ImageError(f"{name} is not installed: apt-get install {package} (Debian's archive)")
    return path


def _check(command: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=container_env(), **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        detail = (result.stderr or b"")[-2000:].decode(errors="replace").strip() if isinstance(result.stderr, bytes) else ""
        raise ImageError(f"{what} failed (exit {result.returncode}){': ' + detail if detail else ''}")
    return result


def image_exists(name: str) -> bool:
    podman = _tool("podman", "podman")
    return subprocess.run([podman, "image", "exists", name], env=container_env(), capture_output=True).returncode == 0


def image_id(name: str) -> str:
    podman = _tool("podman", "podman")
    return _check([podman, "image", "inspect", "--format", "{{.Id}}", name], f"looking up {name}", capture_output=True).stdout.decode().strip()


# -------------------------------------------------------------------------------- base


def base_tarball() -> Path:
    return image_cache() / f"debian-{DEBIAN_SUITE}-slim.tar"


def ensure_base(refresh: bool = False, log: Log = _log) -> str:
    """The local base image (made from Debian's archive once, then cached); returns its name."""
    tarball = base_tarball()
    if refresh or not tarball.is_file():
        _make_base_tarball(tarball, log)
        refresh = True
    if refresh or not image_exists(BASE_NAME):
        podman = _tool("podman", "podman")
        _check([podman, "import", "--quiet", str(tarball), BASE_NAME], f"podman import {tarball}", capture_output=True)
        log(f"base: {BASE_NAME} from {tarball}")
    return BASE_NAME


def _make_base_tarball(tarball: Path, log: Log) -> None:
    mmdebstrap = _tool("mmdebstrap", "mmdebstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    command = [
        mmdebstrap,
        "--variant=minbase",
        "--quiet",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",  # usr-is-merged, not usrmerge (and its perl)
        *(f"--dpkgopt={o}" for o in SLIM_DPKG_OPTIONS),
        *(f"--aptopt={o}" for o in SLIM_APT_OPTIONS),
        DEBIAN_SUITE,
        str(partial),
    ]
    log(f"base: Debian {DEBIAN_SUITE} slim from Debian's archive with mmdebstrap (once; about a minute)")
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ImageError(f"mmdebstrap failed (exit {result.returncode}): {result.stderr[-2000:].decode(errors='replace').strip()}")
    partial.replace(tarball)
    log(f"base: {tarball} ({tarball.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s")


# ------------------------------------------------------------------------------- build


def build(tag: str = DEFAULT_TAG, *, refresh_base: bool = False, log: Log = _log) -> str:
    """Builds container/Dockerfile into ``tag`` (layers cached); returns the image's id."""
    buildah = _tool("buildah", "buildah")
    base = ensure_base(refresh_base, log)
    command = [
        buildah,
        "bud",
        "--layers",
        "--isolation=chroot",
        "--pull=never",
        "--file",
        str(DOCKERFILE),
        "--build-arg",
        f"BASE_IMAGE={base}",
        *_build_mounts(),
        "--tag",
        tag,
        str(REPO),
    ]
    log(f"build: {tag} from {DOCKERFILE.relative_to(REPO)}")
    started = time.monotonic()
    result = subprocess.run(command, env=container_env(), stdout=2)  # the build's output to our stderr (fd 2)
    if result.returncode != 0:
        raise ImageError(f"the build of {tag} failed (exit {result.returncode}); its output is above")
    log(f"build: {tag} in {time.monotonic() - started:.1f} s, {image_size(tag) / 1e6:.0f} MB")
    return image_id(tag)


def _build_mounts() -> list[str]:
    """pip's configuration of this machine (and the CA bundle it names), read-only into each RUN: how pip
    reaches PyPI here. They go in as root's home, /root, a folder every base has: a mount at a path the
    image lacks would leave an empty file there in the image."""
    config = Path(os.environ.get("PIP_CONFIG_FILE") or "/etc/pip.conf")
    if not config.is_file():
        return []
    home = image_cache() / "build-home"
    shutil.rmtree(home, ignore_errors=True)
    (home / ".config" / "pip").mkdir(parents=True)
    text = config.read_text()
    cert = re.search(r"^\s*cert\s*=\s*(\S+)\s*$", text, re.M)
    if cert and Path(cert.group(1)).is_file():
        shutil.copyfile(cert.group(1), home / "pip-ca.crt")
        text = text[: cert.start(1)] + "/root/pip-ca.crt" + text[cert.end(1) :]
    (home / ".config" / "pip" / "pip.conf").write_text(text)
    return ["--volume", f"{home}:/root:ro"]


def image_size(name: str) -> int:
    podman = _tool("podman", "podman")
    out = _check([podman, "image", "inspect", "--format", "{{.Size}}", name], f"looking up {name}", capture_output=True).stdout
    return int(out.decode().strip())


# --------------------------------------------------------------------------------- run


def passed_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` a run passes into the container (the engine's, the AWS SDK's)."""
    return {
        name: value
        for name, value in env.items()
        if (name.startswith(PASSED_PREFIXES) or name in PASSED_NAMES) and name not in HOST_ONLY
    }


def run_command(
    tag: str, args: Iterable[str], env_names: Iterable[str], *, name: str | None = None, tmp_size: str = "2g", entrypoint: str | None = None
) -> list[str]:
    """``podman run`` of the image's entrypoint (or ``entrypoint``) with ``args``, as the ECS task
    definition runs it. Give the variables' values in the environment of the command, not here:
    only their names are passed."""
    podman = _tool("podman", "podman")
    command = [
        podman,
        "run",
        "--rm",
        "--pull=never",
        f"--name={name or 'pipelines-' + uuid.uuid4().hex[:12]}",
        "--network=host",
        "--read-only",
        "--read-only-tmpfs=false",
        f"--tmpfs=/tmp:rw,nosuid,nodev,size={tmp_size},mode=1777",
        "--log-driver=none",
    ]
    command += [f"--env={n}" for n in sorted(set(env_names))]
    command += [f"--entrypoint={entrypoint}"] if entrypoint else []
    return [*command, tag, *args]


def run(tag: str, args: list[str], env: Mapping[str, str] | None = None, *, name: str | None = None) -> int:
    """Runs the image as an ECS task would, attached; returns the container's exit code."""
    passed = passed_environment(os.environ if env is None else env)
    command = run_command(tag, args, passed, name=name)
    return subprocess.run(command, env=container_env({**os.environ, **passed})).returncode


def stop(name: str, signal_name: str = "TERM") -> None:
    """Sends ``signal_name`` to the container's first process (an ECS StopTask sends SIGTERM)."""
    podman = _tool("podman", "podman")
    subprocess.run([podman, "kill", f"--signal={signal_name}", name], env=container_env(), capture_output=True)


# ---------------------------------------------------------------------------- size


def size_report(tag: str) -> list[tuple[str, int]]:
    """(what, bytes) of the image's biggest parts, measured inside a run of it."""
    script = (
        "import os, sys\n"
        "def du(p):\n"
        "    t = 0\n"
        "    for d, _, fs in os.walk(p):\n"
        "        for f in fs:\n"
        "            try: t += os.lstat(os.path.join(d, f)).st_size\n"
        "            except OSError: pass\n"
        "    return t\n"
        "site = [p for p in sys.path if p.endswith('site-packages')][0]\n"
        "parts = {'/usr (Debian: Python, libc, ...)': du('/usr'), '/opt/venv': du('/opt/venv'), '/var': du('/var'), '/etc': du('/etc')}\n"
        "for e in os.scandir(site):\n"
        "    if e.is_dir(): parts['  ' + e.name] = du(e.path)\n"
        "print(__import__('json').dumps(parts))\n"
    )
    out = _check(run_command(tag, ["-c", script], [], entrypoint="python"), "measuring the image", capture_output=True).stdout.decode()
    parts = json.loads(out.strip().splitlines()[-1])
    top = {k: v for k, v in parts.items() if not k.startswith("  ")}
    packages = sorted(((k, v) for k, v in parts.items() if k.startswith("  ")), key=lambda kv: -kv[1])[:12]
    return [*sorted(top.items(), key=lambda kv: -kv[1]), *packages]
