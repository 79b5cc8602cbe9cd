"""Command line: ``python -m tinygrad_rad.learn {list, run N, check N}``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinygrad_rad.learn", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the chapters and their exercises")
    r = sub.add_parser("run", help="run a chapter's code blocks in order")
    r.add_argument("chapter", type=int)
    r.add_argument("--short", action="store_true", help="tiny sizes and few steps (what the tests run)")
    r.add_argument("--out", default=None, help="folder for figures and the run's output (docs/learn/_out)")
    c = sub.add_parser("check", help="test exercise solutions (the shipped ones without --file)")
    c.add_argument("chapter", type=int)
    c.add_argument("--file", default=None, help="your solution file (a Python file defining the names)")
    c.add_argument("-v", "--verbose", action="store_true", help="print full tracebacks of failures")
    args = p.parse_args(argv)
    if args.cmd == "list":
        from .check import list_chapters

        list_chapters()
        return 0
    if args.cmd == "run":
        from .run import chapter_path, run_chapter

        try:
            chapter_path(args.chapter)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        run_chapter(args.chapter, short=args.short, out=args.out)  # a chapter's own errors: full traceback
        return 0
    from .check import check

    try:
        results = check(args.chapter, args.file, verbose=args.verbose)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
