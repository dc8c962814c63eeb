"""``capforecast reference train|suite``: rebuild the embedded reference family and its benchmark."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
FAMILY_DIR = PACKAGE_DIR / "family"
SUITE_PATH = DATA_DIR / "suite.jsonl.gz"
HELD_OUT_PATH = DATA_DIR / "held_out.jsonl"


def register(subparsers) -> None:
    """Add ``reference train`` and ``reference suite`` to the capforecast CLI."""
    parser = subparsers.add_parser("reference", help="rebuild the embedded reference family and benchmark")
    sub = parser.add_subparsers(dest="reference_command", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="train the reference family (about 15-30 min on 2 cores)")
    train.add_argument("--out", type=Path, required=True,
                       help=f"output folder (required; the shipped family in {FAMILY_DIR} is replaced only "
                            f"with --replace-shipped)")
    train.add_argument("--replace-shipped", action="store_true",
                       help="allow --out to be the shipped family folder (overwrites the models the tests and "
                            "the README's numbers use)")
    train.add_argument("--only", nargs="+", metavar="NAME", help="train only these members")
    train.add_argument("--tiny", action="store_true", help="a reduced two-member setting for CI (seconds)")
    train.add_argument("--max-steps", type=int, help="cap every member's steps (smoke runs; cards say so)")
    train.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="members trained at once, one process and one thread each (default: CPUs, %(default)s)")
    train.set_defaults(func=run_train)
    suite = sub.add_parser("suite", help="regenerate the benchmark and the held-out loss corpus")
    suite.add_argument("--out", type=Path, default=DATA_DIR, help=f"output folder (default {DATA_DIR})")
    suite.set_defaults(func=run_suite)


def run_train(args) -> int:
    """Train the family (or a reduced setting) and print one line per checkpoint."""
    from dataclasses import replace

    from pipeline.errors import UserError
    from pipeline.reference.train import FAMILY, TINY, train_family

    if args.out.resolve() == FAMILY_DIR.resolve() and not args.replace_shipped:
        raise UserError(f"--out {args.out}: that is the shipped reference family; training into it overwrites "
                        f"the models every default run uses. Give another --out, or add --replace-shipped")
    recipe = TINY if args.tiny else FAMILY
    if args.max_steps:
        recipe = replace(recipe, members=tuple(replace(m, steps=min(m.steps, args.max_steps)) for m in recipe.members))
    names = {m.name for m in recipe.members}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        raise UserError(f"--only: unknown member(s) {', '.join(unknown)}; members are {', '.join(sorted(names))}")
    train_family(recipe, args.out, only=args.only, jobs=args.jobs)
    return 0


def run_suite(args) -> int:
    """Write suite.jsonl.gz and held_out.jsonl into ``--out``."""
    from pipeline.records import atomic_write_text
    from pipeline.reference.corpus import held_out_documents, write_held_out
    from pipeline.reference.suite import build_suite, suite_bytes

    args.out.mkdir(parents=True, exist_ok=True)
    problems = build_suite()
    data = suite_bytes(problems)
    tmp = args.out / "suite.jsonl.gz.tmp"
    tmp.write_bytes(data)
    tmp.replace(args.out / "suite.jsonl.gz")
    write_held_out(args.out / "held_out.jsonl", held_out_documents())
    print(f"wrote {len(problems)} problems to {args.out / 'suite.jsonl.gz'} and the held-out corpus to "
          f"{args.out / 'held_out.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``reference`` without the rest of the CLI (``python -m pipeline.reference.cli train``)."""
    parser = argparse.ArgumentParser(prog="capforecast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["reference"] + list(sys.argv[1:] if argv is None else argv))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
