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


def _train_args(p, multi: bool = False) -> None:
    from .data import DATASETS

    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="folder of IDX files (mnist, fashion_mnist)")
    if not multi:
        p.add_argument("--optimizer", default="esso", choices=["esso", "sgd", "adam"])
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="widths n_0,...,n_L (default n_0,32,n_out of the dataset)")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default esso 1.0, sgd 0.05, adam 1e-3)")
    p.add_argument("--damping", type=float, default=10.0, help="esso: damping lam")
    p.add_argument("--spectral", default="abs", choices=["abs", "clip", "none"])
    p.add_argument("--method", default="structured", choices=["structured", "layerwise"])
    p.add_argument("--curvature", default="hessian", choices=["hessian", "ggn"])
    p.add_argument("--adaptive", action="store_true", help="esso: Levenberg-Marquardt damping")
    p.add_argument("--momentum", type=float, default=0.0, help="sgd momentum")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train on a dataset with esso / sgd / adam",
                       description="Train an MLP; per-epoch train/test loss and accuracy on "
                       "stderr, a JSON summary on stdout with --json.")
    _train_args(p)
    p.add_argument("--log", default=None, help="append one JSON line per epoch to this file")
    p.add_argument("--plot", default=None, help="write training curves to this PNG")
    p.add_argument("--checkpoint", default=None, help="save a checkpoint after every epoch")
    p.add_argument("--resume", default=None, help="continue from this checkpoint")
    p.add_argument("--sharpness", action="store_true",
                   help="report the flatness of the final point (top Hessian eigenvalues)")
    p.add_argument("--track-spectrum", action="store_true",
                   help="log the exact spectrum of training sample 0 after every epoch "
                   "(plot it with esso-ref spectrum --log)")
    p.set_defaults(run=_run_train)


def _config(args, optimizer=None, seed=None):
    from .train import TrainConfig

    return TrainConfig(
        dataset=args.dataset, optimizer=optimizer or args.optimizer, sizes=args.sizes,
        activation=args.activation, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed if seed is None else seed, lr=args.lr, damping=args.damping,
        spectral=args.spectral, method=args.method, curvature=args.curvature,
        adaptive=args.adaptive, momentum=args.momentum, data_dir=args.data_dir,
        log=getattr(args, "log", None), checkpoint=getattr(args, "checkpoint", None),
        resume=getattr(args, "resume", None), quiet=args.quiet or args.json,
        sharpness=getattr(args, "sharpness", False),
        track_spectrum=getattr(args, "track_spectrum", False))


def _run_train(args) -> int:
    import json

    from .train import Diverged, train

    try:
        result = train(_config(args))
    except Diverged as err:
        print(f"esso-ref train: {err}", file=sys.stderr)
        return 3
    if args.plot:
        from .plots import plot_histories

        plot_histories({args.optimizer: result["history"]}, args.plot)
    summary = result["summary"]
    if args.json:
        print(json.dumps(summary))
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare optimizers over seeds: table and plots",
                       description="Train every optimizer with every seed; write a CSV and a "
                       "JSON table (mean and std over seeds) and a PNG of the curves.")
    _train_args(p, multi=True)
    p.add_argument("--optimizers", default="esso,sgd,adam")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--target", type=float, default=0.95, help="target test accuracy")
    p.add_argument("--out", default="compare", help="output prefix (.csv, .json, .png)")
    p.add_argument("--label", default=None, help="label of this run in the table")
    p.add_argument("--no-sharpness", action="store_true")
    p.set_defaults(run=_run_compare)


def _run_compare(args) -> int:
    from .compare import compare

    configs, names = {}, args.optimizers.split(",")
    for name in names:
        label = args.label or name
        if args.label and len(names) > 1:
            label = f"{args.label} {name}"
        configs[label] = [_config(args, optimizer=name, seed=s)
                          for s in range(args.seed, args.seed + args.seeds)]
    table = compare(configs, args.out, target=args.target, sharpness=not args.no_sharpness)
    for row in table:
        print(", ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def _add_spectrum(sub) -> None:
    p = sub.add_parser("spectrum", help="exact eigenvalues of one sample's Hessian",
                       description="All eigenvalues of one training sample's Hessian "
                       "(structured, eqs. (24)-(25)) at init or at a checkpoint's theta.")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--sample", type=int, default=0, help="index in the training set")
    p.add_argument("--sizes", type=_sizes, default=None)
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="take theta (and the net) from here")
    p.add_argument("--log", default=None, help="a train --track-spectrum log: show how the "
                   "spectrum evolved over the epochs")
    p.add_argument("--plot", default=None, help="write a stem plot and histogram (PNG)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_run_spectrum)


def _run_spectrum(args) -> int:
    import json

    import numpy as np

    from .checkpoint import load_checkpoint
    from .curvature import eigenvalues
    from .data import load_dataset
    from .mlp import MLP

    if args.log:
        return _spectrum_log(args)
    data = load_dataset(args.dataset, args.data_dir, args.seed)
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        net, theta = ckpt["net"], ckpt["theta"]
    else:
        net = MLP(args.sizes or [data.num_inputs, 32, data.num_outputs], args.activation,
                  data.loss)
        theta = net.init(args.seed)
    if not 0 <= args.sample < data.X_train.shape[0]:
        raise ValueError(f"expected --sample in [0, {data.X_train.shape[0] - 1}], "
                         f"got {args.sample}")
    i = args.sample
    spec = eigenvalues(net, theta, data.X_train[i], data.y_train[i:i + 1])
    mu = np.asarray(spec.values)
    out = {"sizes": list(net.sizes), "P": net.num_params, "rank_bound": net.rank_bound,
           "num_zeros": spec.num_zeros, "min": float(mu.min()), "max": float(mu.max()),
           "negative": int(np.sum(mu < 0)), "eigenvalues": mu.tolist()}
    if args.plot:
        from .plots import plot_spectrum

        plot_spectrum(mu, spec.num_zeros, args.plot, f"{args.dataset} sample {i}")
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{net!r}: P = {net.num_params}, r = {net.rank_bound}; {mu.size} eigenvalues "
              f"can be non-zero ({out['negative']} negative), {spec.num_zeros} are exactly 0")
        print(f"min {out['min']:.6e}  max {out['max']:.6e}")
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time the structured, dense and iterative routes",
                       description="Spectrum, Newton direction, HVP, per-sample directions and "
                       "memory of the structured exact routes against dense, Lanczos, CG and "
                       "PyTorch routes, in one process (see docs/performance.md).")
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    p.add_argument("--sizes", default=None,
                   help="networks separated by ';', widths by ',' (e.g. '64,32,10;784,256,10')")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--plot", default=None, help="write the log-log scaling plot (PNG)")
    p.set_defaults(run=_run_bench)


def _run_bench(args) -> int:
    import json

    from .bench import format_table, run_bench, targets

    sizes = [_sizes(s) for s in args.sizes.split(";")] if args.sizes else None
    result = run_bench(sizes, quick=args.quick, repeats=args.repeats)
    result["targets"] = targets(result)
    if args.plot:
        from .plots import plot_bench

        plot_bench(result, args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result))
        print("targets: " + json.dumps(result["targets"]))
    return 0


def _spectrum_log(args) -> int:
    import json
    from pathlib import Path

    rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line]
    rows = [r for r in rows if "spectrum" in r]
    if not rows:
        raise ValueError(f"expected epochs with a 'spectrum' entry in {args.log}, got none; "
                         "train with --track-spectrum --log FILE")
    out = [{"epoch": r["epoch"], **{k: r["spectrum"][k] for k in ("min", "max", "negative")}}
           for r in rows]
    if args.plot:
        from .plots import plot_spectrum_evolution

        plot_spectrum_evolution(rows, args.plot)
    if args.json:
        print(json.dumps(out))
    else:
        for r in out:
            print(f"epoch {r['epoch']:3d}  min {r['min']: .4e}  max {r['max']: .4e}  "
                  f"negative {r['negative']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``esso-ref``."""
    parser = argparse.ArgumentParser(
        prog="esso-ref",
        description="esso_ref: exact stochastic second-order optimisation for MLPs.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_verify(sub)
    _add_spectrum(sub)
    _add_train(sub)
    _add_compare(sub)
    _add_export(sub)
    _add_bench(sub)
    from .cli_analysis import add_analysis_commands
    add_analysis_commands(sub)
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
