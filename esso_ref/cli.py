"""The ``esso-ref`` command line: ``esso-ref verify`` and friends (``esso-ref --help``).

Exit status: 0 success, 1 internal failure, 2 usage or input error, 3 training diverged (see
docs/cli.md). Errors print one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .activations import ACTIVATIONS
from .cli_common import Parser, add_parser, count, format_table, positive_float, run_command
from .cli_common import sizes as _sizes
from .cli_common import sizes_list as _sizes_list
from .cli_train import add_compare, add_spectrum, add_train
from .losses import LOSSES

__all__ = ["build_parser", "main"]


def _add_verify(sub) -> None:
    from .verification import GROUPS

    p = add_parser(sub, "verify", help="check every curvature quantity against independent routes",
                   description="Check gradient, HVP, Hessian, factorisation, spectrum and "
                   "Newton directions of a seeded network against independent oracles. "
                   "Exit status 0 only when every check passes.")
    p.add_argument("--sizes", type=_sizes, default=[8, 6, 4], help="widths n_0,...,n_L")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS),
                   help="hidden activation")
    p.add_argument("--loss", default="cross_entropy", choices=sorted(LOSSES), help="loss")
    p.add_argument("--no-bias", action="store_true", help="networks without biases")
    p.add_argument("--batch", type=count(1), default=2, help="batch size B")
    p.add_argument("--seed", type=count(0), default=0, help="seed of theta, X and y")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="floating-point type")
    p.add_argument("--damping", type=positive_float, default=1e-3,
                   help="damping lam of the Newton checks")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "array_api_strict"],
                   help="array namespace")
    p.add_argument("--checks", default="all",
                   help=f"'all', 'list' (print the groups), or comma-separated groups of "
                   f"{', '.join(GROUPS)}")
    p.add_argument("--max-dense-params", type=count(0), default=5000,
                   help="largest P checked against the dense Hessian")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=_run_verify)


def _verify_checks(text: str):
    from .verification import GROUPS

    if text == "all":
        return "all"
    names = [s.strip() for s in text.split(",")]
    bad = [n for n in names if n not in GROUPS]
    if bad:
        raise ValueError(f"expected --checks 'all', 'list' or comma-separated groups of "
                         f"{', '.join(GROUPS)}, got {text!r}")
    return names


def _check_verify_memory(net, args) -> None:
    """Refuse, before any work, a verify run whose arrays would not fit in memory.

    B per-sample P-vectors and activations and, when P is within --max-dense-params, the dense
    references: the complex-step Hessian (P x P complex, with copies), and the materialised
    factors of the batch (C_B and G_B, B r x B r, and A_B, B r x P, with copies).
    """
    from ._memory import check_entries
    from .backend import get_namespace

    P, xp, n = net.num_params, get_namespace(args.backend), args.batch * net.rank_bound
    dense = 6 * P * P + 4 * n * n + 2 * n * P if P <= args.max_dense_params else 0
    check_entries(4 * args.batch * (P + sum(net.sizes)) + 4 * P + dense, getattr(xp, args.dtype),
                  f"esso-ref verify on {net!r} with B = {args.batch}"
                  + (f" and the dense Hessian (P = {P})" if dense else ""),
                  "use smaller --sizes / --batch" + (" or a lower --max-dense-params" if dense
                                                      else ""), xp)


def _run_verify(args) -> int:
    from .mlp import MLP
    from .problems import random_problem
    from .verification import GROUPS, verify

    if args.checks == "list":
        print("\n".join(GROUPS))
        return 0
    checks = _verify_checks(args.checks)
    net = MLP(args.sizes, args.activation, args.loss, bias=not args.no_bias)
    _check_verify_memory(net, args)
    theta, X, y = random_problem(net, args.batch, args.seed, args.dtype, xp=args.backend)
    report = verify(net, theta, X, y, damping=args.damping, checks=checks,
                    max_dense_params=args.max_dense_params, seed=args.seed)
    if args.json:
        print(report.to_json())
    else:
        print(f"esso-ref verify: {net!r}, P = {net.num_params}, B = {args.batch}, "
              f"{args.dtype}, backend {args.backend}")
        print(report.table())
    return 0 if report.passed else 1


def _add_export(sub) -> None:
    p = add_parser(sub, "export-cases", help="write golden cases for validating other code",
                   description="Write manifest.json and one .npz per golden case to DIR "
                   "(deterministic, versioned); read them with esso_ref.golden.load.")
    p.add_argument("directory", help="output folder (created if missing)")
    p.add_argument("--seed", type=count(0), default=0, help="base seed of the cases")
    p.add_argument("--max-dense-params", type=count(0), default=2000,
                   help="largest P whose dense Hessian is stored")
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .golden import export, load

    path = export(args.directory, seed=args.seed, max_dense=args.max_dense_params)
    cases = load(args.directory)
    print(f"esso-ref export-cases: {len(cases)} cases, manifest {path}")
    return 0


def _add_bench(sub) -> None:
    p = add_parser(sub, "bench", help="time the structured, dense and iterative routes",
                   description="Spectrum, Newton direction, HVP, per-sample directions and "
                   "memory of the structured exact routes against dense, Lanczos, CG and "
                   "PyTorch routes, in one process (see docs/performance.md).")
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    p.add_argument("--sizes", type=_sizes_list, default=None,
                   help="networks separated by ';', widths by ',' (e.g. '64,32,10;784,256,10'; "
                   "default: the standard list)")
    p.add_argument("--repeats", type=count(1), default=None,
                   help="timed runs per measurement (default: 1 with --quick, else 3)")
    p.add_argument("--public-only", action="store_true",
                   help="only the public calls against their floors and the load test")
    p.add_argument("--max-system", type=count(1), default=6000,
                   help="largest mini-batch system B r of the public table (B = 8 at "
                   "784,512,512,10 needs 16464; its dense floors take many minutes)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--plot", default=None, help="write the log-log scaling plot (PNG)")
    p.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    import json

    from .bench import format_table as bench_table
    from .bench import run_bench, targets

    if args.plot:
        from .plots import check_plot

        check_plot(args.plot)
    if args.plot and args.public_only:
        raise ValueError("--plot needs the internal routes: drop --public-only")
    result = run_bench(args.sizes, quick=args.quick, repeats=args.repeats,
                       public_only=args.public_only, max_system=args.max_system)
    result["targets"] = targets(result)
    if args.json:
        print(json.dumps(result))
    else:
        print(bench_table(result))
        print("\nsummary (worst ratio to the floor per call, smallest stacked speed-up; "
              "targets in docs/performance.md):")
        print(format_table([{"measure": k, "value": v}
                            for k, v in sorted(result["targets"].items())]))
    if args.plot:
        from .plots import plot_bench

        plot_bench(result, args.plot)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``esso-ref``."""
    parser = Parser(
        prog="esso-ref", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="esso_ref: exact stochastic second-order optimisation for MLPs. Exit "
        "status: 0 success, 1 internal failure, 2 usage or input error, 3 training diverged.")
    parser.add_argument("--version", action="version", version=f"esso-ref {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(_commands=sub.choices)  # each command's parser, for its own errors
    _add_verify(sub)
    add_spectrum(sub)
    add_train(sub)
    add_compare(sub)
    _add_export(sub)
    _add_bench(sub)
    from .cli_analysis import add_analysis_commands
    add_analysis_commands(sub)
    return parser


_TOP_OPTIONS = ("-h", "--help", "--version", "--debug")
"""The options of esso-ref itself, given before the command."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``esso-ref`` console script; returns the exit status."""
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(given) if not a.startswith("-")), len(given))
    stray = [a for a in given[:first] if a.split("=")[0] not in _TOP_OPTIONS]
    if stray:  # before the command: esso-ref's own options only
        parser.error(f"unrecognized arguments: {' '.join(stray)} (a command's options go "
                     f"after it: esso-ref COMMAND {stray[0]} ...)")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the parser they were given to: "esso-ref train: error: ..."
        before = given.index(args.command) if args.command in given else len(given)
        owner = parser if unknown[0] in given[:before] else args._commands[args.command]
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
