"""The ``esso-ref`` command line: ``esso-ref verify`` and friends (``esso-ref --help``)."""

from __future__ import annotations

import argparse
import sys

from .activations import ACTIVATIONS
from .losses import LOSSES

__all__ = ["main"]


def _sizes(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integer widths such as 8,6,4, got {text!r}") from None


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check every curvature quantity against independent routes",
                       description="Check gradient, HVP, Hessian, factorisation, spectrum and "
                       "Newton directions of a seeded network against independent oracles. "
                       "Exit status 0 only when every check passes.")
    p.add_argument("--sizes", type=_sizes, default=[8, 6, 4], help="widths n_0,...,n_L")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    p.add_argument("--loss", default="cross_entropy", choices=sorted(LOSSES))
    p.add_argument("--no-bias", action="store_true", help="networks without biases")
    p.add_argument("--batch", type=int, default=2, help="batch size B")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--damping", type=float, default=1e-3)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy", "array_api_strict"])
    p.add_argument("--checks", default="all", help="'all' or comma-separated groups")
    p.add_argument("--max-dense-params", type=int, default=2000)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=_run_verify)


def _run_verify(args) -> int:
    from .mlp import MLP
    from .problems import random_problem
    from .verification import verify

    net = MLP(args.sizes, args.activation, args.loss, bias=not args.no_bias)
    theta, X, y = random_problem(net, args.batch, args.seed, args.dtype, xp=args.backend)
    checks = "all" if args.checks == "all" else args.checks.split(",")
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
    p = sub.add_parser("export-cases", help="write golden cases for validating other code",
                       description="Write manifest.json and one .npz per golden case to DIR "
                       "(deterministic, versioned); read them with esso_ref.golden.load.")
    p.add_argument("directory", help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-dense-params", type=int, default=2000)
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .golden import export, load

    path = export(args.directory, seed=args.seed, max_dense=args.max_dense_params)
    cases = load(args.directory)
    print(f"esso-ref export-cases: {len(cases)} cases, manifest {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``esso-ref``."""
    parser = argparse.ArgumentParser(
        prog="esso-ref",
        description="esso_ref: exact stochastic second-order optimisation for MLPs.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_verify(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``esso-ref`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, ImportError, OSError) as err:
        print(f"esso-ref {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
