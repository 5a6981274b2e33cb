"""`devtensor launch -n N script.py [args...]`: start a data-parallel job, i.e. run

    mpiexec -n N python -m mpi4py script.py args...

with the mpiexec of this Python's environment (the `mpich` wheel of `pip install 'devtensor[mpi]'`
puts it next to python) and this Python. `-m mpi4py` makes an uncaught exception on any rank abort
the whole job (MPI_Abort) instead of leaving the other ranks waiting. The exit status is mpiexec's.

Several machines: the same environment (same paths) on each, reachable by ssh without a password,
and a hostfile with one line per machine, "host[:processes]" (MPICH) or "host slots=N" (Open MPI):

    devtensor launch -n 8 --hostfile hosts.txt train.py       # MPICH: node1:4 / node2:4
    devtensor launch -n 8 --hosts node1,node2 train.py        # ranks spread over the two hosts
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import CliError

DESCRIPTION = __doc__


def add_arguments(p):
    p.add_argument("-n", "--nproc", type=int, required=True, metavar="N", help="number of ranks (processes)")
    p.add_argument("--hostfile", metavar="FILE", help="machines to run on, one per line (see above)")
    p.add_argument("--hosts", metavar="H1,H2", help="comma-separated machines to run on")
    p.add_argument("--mpiexec", metavar="PATH",
                   help="the mpiexec to use (default: the one next to this python, else the first on PATH)")
    p.add_argument("--mpiexec-args", default="", metavar="'ARGS'",
                   help="more options for mpiexec, as one quoted string (e.g. '-bind-to core')")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a module (python -m MODULE) instead of a script")
    p.add_argument("script", nargs="?", help="the training script, run on every rank")
    p.add_argument("script_args", nargs="...", help="arguments for the script")


def find_mpiexec(given=None):
    if given:
        path = shutil.which(given)
        if path is None:
            raise CliError(f"--mpiexec {given}: no such executable")
        return path
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    path = shutil.which("mpiexec")
    if path is None:
        raise CliError("no mpiexec found next to this python or on PATH; install one with: "
                       "pip install 'devtensor[mpi]' (mpi4py and the mpich wheel, which brings mpiexec)")
    return path


def _flavour(mpiexec):
    """'mpich' or 'openmpi': their host options are spelt differently."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20)
        text = out.stdout + out.stderr
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return "openmpi" if "Open MPI" in text or "OpenRTE" in text else "mpich"


def command(args):
    """The mpiexec command line for parsed `args` (a list of strings)."""
    if args.nproc < 1:
        raise CliError(f"-n must be at least 1, got {args.nproc}")
    if (args.script is None) == (args.module is None):
        raise CliError("give the training script to run (devtensor launch -n 2 train.py ...) or -m MODULE")
    if args.script is not None and not Path(args.script).exists():
        raise CliError(f"{args.script}: no such file")
    if args.hostfile and not Path(args.hostfile).exists():
        raise CliError(f"--hostfile {args.hostfile}: no such file")
    mpiexec = find_mpiexec(args.mpiexec)
    cmd = [mpiexec, "-n", str(args.nproc)]
    if args.hostfile or args.hosts:
        openmpi = _flavour(mpiexec) == "openmpi"
        if args.hostfile:
            cmd += ["--hostfile" if openmpi else "-f", args.hostfile]
        if args.hosts:
            cmd += ["--host" if openmpi else "-hosts", args.hosts]
    cmd += shlex.split(args.mpiexec_args)
    cmd += [sys.executable, "-m", "mpi4py"]
    cmd += ["-m", args.module] if args.module else [args.script]
    if args.module and args.script is not None:  # `-m pkg.mod arg1 ...`: the "script" is its first argument
        cmd.append(args.script)
    return cmd + list(args.script_args)


def run(args):
    cmd = command(args)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    try:
        import mpi4py  # noqa: F401 - fail here, clearly, rather than once per rank
    except ImportError:
        raise CliError("mpi4py is not installed in this environment; install it with: pip install "
                       "'devtensor[mpi]'") from None
    return subprocess.call(cmd)
