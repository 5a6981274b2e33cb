"""The `devtensor` command: `devtensor bench` (time ops on every device against numpy, PyTorch and
CuPy), `devtensor info` (versions, backends, devices, BLAS, kernel caches) and `devtensor launch`
(start a data-parallel job under mpiexec).

Installed as a console script (pyproject: devtensor = "devtensor.cli:main"); also
`python -m devtensor ...`. Errors the user can fix (a bad option, a missing device) print one
line and exit non-zero: no traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import CliError  # noqa: F401 - re-exported: the one error type main() turns into a message


def build_parser() -> argparse.ArgumentParser:
    from . import bench, info, launch

    p = argparse.ArgumentParser(
        prog="devtensor", description="devtensor command-line tools.",
        epilog="Run 'devtensor COMMAND --help' for a command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser(
        "bench", help="time ops and training steps per device, against numpy / PyTorch / CuPy",
        description=bench.DESCRIPTION, epilog=bench.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(b)
    b.set_defaults(run=bench.run)
    i = sub.add_parser("info", help="versions, backends (and why one is unavailable), devices, BLAS, caches",
                       description="Print what devtensor runs on: versions, backends, devices, the BLAS numpy "
                                   "uses and its threads, numba's threading layer, kernel cache locations.")
    info.add_arguments(i)
    i.set_defaults(run=info.run)
    lp = sub.add_parser("launch", help="start a data-parallel job: mpiexec -n N python -m mpi4py script.py ...",
                        description=launch.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    launch.add_arguments(lp)
    lp.set_defaults(run=launch.run)
    return p


def main(argv=None) -> int:
    """Entry point; returns the exit status (the console script passes it to sys.exit)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in the results, so a table says how it was made
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except CliError as e:
        print(f"devtensor {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"devtensor {args.command}: interrupted", file=sys.stderr)
        return 130
