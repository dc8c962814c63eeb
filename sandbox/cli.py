"""``capforecast sandbox build`` (make the image) and ``capforecast sandbox check`` (which backends work here)."""
from __future__ import annotations

import argparse
import sys

from pipeline.errors import UserError

KNOWN_PASS = ("def add(a, b):\n    return a + b\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n")
KNOWN_FAIL = ("def add(a, b):\n    import sys\n    sys.exit(0)\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n")


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="build and check the execution sandbox",
                                   description="Build the Docker sandbox image, or check which sandbox backends work.")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build the sandbox image (offline: debootstrap + docker import)")
    build.add_argument("--image", default=None, help="image name (default: capforecast-sandbox:1)")
    build.add_argument("--dockerfile", action="store_true",
                       help="build from sandbox/Dockerfile instead (needs a reachable registry)")
    build.add_argument("--mirror", default=None, help="Debian mirror for debootstrap")
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.add_argument("--no-start-engine", action="store_true", help="never start dockerd ourselves")
    build.set_defaults(func=build_main)
    check = sub.add_parser("check", help="say which backends work here; run a known-pass and a known-fail program")
    check.add_argument("--backend", action="append", default=None,
                       help="check only this backend (repeatable; docker, bwrap, unsafe-no-isolation)")
    check.set_defaults(func=check_main)


def build_main(args) -> int:
    from sandbox import image

    name = args.image or image.IMAGE
    try:
        c = image.client(timeout=600) if args.no_start_engine else image.start_engine()
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    if c is None:
        raise UserError("no Docker engine answers; start it (`dockerd &` as root) or drop --no-start-engine")
    if image.image_exists(c, name) and not args.force:
        print(f"{name}: already built (use --force to rebuild)")
        return 0
    try:
        if args.dockerfile:
            image.build_from_dockerfile(c, name)
        else:
            image.build_offline(c, name, mirror=args.mirror or image.MIRROR)
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    print(f"{name}: built")
    return 0


def check_programs():
    from sandbox.api import Program
    return [Program(id="known-pass", candidate=KNOWN_PASS[0], test=KNOWN_PASS[1], entry_point="add"),
            Program(id="known-fail", candidate=KNOWN_FAIL[0], test=KNOWN_FAIL[1], entry_point="add")]


def check_backend(name: str) -> tuple[bool, str]:
    """Run the two known programs on one backend; (works, one-line report)."""
    import sandbox

    try:
        with sandbox.open_backend(name, workers=1) as backend:
            outcomes = {o.id: o for o in backend.run(check_programs())}
    except sandbox.SandboxUnavailable as exc:
        return False, str(exc).split(". ")[0]
    good = outcomes["known-pass"].passed and outcomes["known-fail"].status == sandbox.FAILED
    return good, (f"known-pass: {outcomes['known-pass'].status}, known-fail: {outcomes['known-fail'].status} "
                  f"({outcomes['known-fail'].detail})")


def check_main(args) -> int:
    import sandbox

    report = sandbox.available_backends()
    names = args.backend or ["docker", "bwrap"]
    working = []
    for name in names:
        if name not in report:
            raise UserError(f"--backend {name}: unknown; choose from {', '.join(report)}")
        print(f"{name:>20}: {report[name]}")
        if report[name].startswith("ok"):
            ok, line = check_backend(name)
            print(f"{'':>20}  {'works' if ok else 'BROKEN'}: {line}")
            if ok:
                working.append(name)
    if not working:
        print(sandbox.HOW_TO_GET_ONE, file=sys.stderr)
        return 1
    print(f"usable: {', '.join(working)} ('auto' picks {working[0]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run as ``python -m sandbox.cli ACTION`` before the command is registered in pipeline/cli.py."""
    parser = argparse.ArgumentParser(prog="capforecast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sandbox", *(argv if argv is not None else sys.argv[1:])])
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"capforecast sandbox: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
