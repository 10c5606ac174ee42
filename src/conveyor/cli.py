"""The ``conveyor`` command: ``demo`` and ``clean`` today; ``plan`` and ``run`` come with graphs."""

from __future__ import annotations

import argparse
import sys

from conveyor import __version__


def _clean(args: argparse.Namespace) -> int:
    from conveyor.transport.segment import leaked_segments, sweep_orphans

    removed = sweep_orphans()
    for name in removed:
        print(f"removed {name}")
    live = leaked_segments()
    print(f"removed {len(removed)} segment(s) of dead processes; {len(live)} belong to live ones")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="conveyor", description="Multi-process pipelines for live video inference."
    )
    parser.add_argument("--version", action="version", version=f"conveyor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo", help="watch frames cross processes through shared memory", add_help=False
    )
    sub.add_parser("clean", help="remove shared-memory segments left by dead processes")
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from conveyor import demo

        return demo.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return _clean(args)


if __name__ == "__main__":
    sys.exit(main())
