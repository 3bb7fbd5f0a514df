"""``esso-ref train``, ``compare`` and ``spectrum``: training runs and their spectra."""

from __future__ import annotations

import json
import sys

from .activations import ACTIVATIONS
from .cli_common import accuracy, add_parser, count, format_table, positive_float, sizes

__all__ = ["add_compare", "add_spectrum", "add_train"]

OPTIMIZERS = ("esso", "sgd", "adam")


def _train_args(p, multi: bool = False) -> None:
    from .data import DATASETS

    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set")
    p.add_argument("--data-dir", default=None, help="folder of IDX files (mnist, fashion_mnist)")
    if not multi:
        p.add_argument("--optimizer", default="esso", choices=OPTIMIZERS, help="optimizer")
    p.add_argument("--sizes", type=sizes, default=None,
                   help="widths n_0,...,n_L (default: n_0,32,n_out of the dataset)")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS),
                   help="hidden activation")
    p.add_argument("--epochs", type=count(1), default=10, help="epochs (in total, on resume)")
    p.add_argument("--batch-size", type=count(1), default=1, help="samples per step")
    p.add_argument("--seed", type=count(0), default=0, help="seed of theta and batch order")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: esso 1.0, sgd 0.05, adam 1e-3)")
    p.add_argument("--damping", type=positive_float, default=10.0, help="esso: damping lam")
    p.add_argument("--spectral", default="abs", choices=["abs", "clip", "none"],
                   help="esso: spectral adjustment of the Hessian")
    p.add_argument("--method", default="structured", choices=["structured", "layerwise"],
                   help="esso: full or block-diagonal curvature")
    p.add_argument("--curvature", default="hessian", choices=["hessian", "ggn"],
                   help="esso: Hessian or Gauss-Newton")
    p.add_argument("--adaptive", action="store_true",
                   help="esso: Levenberg-Marquardt damping, never below --damping")
    p.add_argument("--momentum", type=float, default=0.0, help="sgd momentum in [0, 1)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_train(sub) -> None:
    """The ``train`` sub-command."""
    p = add_parser(sub, "train", help="train on a dataset with esso / sgd / adam",
                   description="Train an MLP; per-epoch train/test loss and accuracy on stderr "
                   "(unless --quiet), a summary on stdout (one JSON line with --json). Exit "
                   "status 3 when the training diverges.")
    _train_args(p)
    p.add_argument("--log", default=None, help="append one JSON line per epoch to this file")
    p.add_argument("--plot", default=None, help="write training curves to this PNG")
    p.add_argument("--checkpoint", default=None, help="save a checkpoint after every epoch")
    p.add_argument("--resume", default=None,
                   help="continue from this checkpoint (same settings; --epochs may grow)")
    p.add_argument("--sharpness", action="store_true",
                   help="report the flatness of the final point (top Hessian eigenvalues)")
    p.add_argument("--track-spectrum", action="store_true",
                   help="log the exact spectrum of training sample 0 after every epoch "
                   "(plot it with esso-ref spectrum --log)")
    p.set_defaults(run=_run_train)


def _config(args, optimizer=None, seed=None, quiet=None):
    from .train import TrainConfig

    return TrainConfig(
        dataset=args.dataset, optimizer=optimizer or args.optimizer, sizes=args.sizes,
        activation=args.activation, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed if seed is None else seed, lr=args.lr, damping=args.damping,
        spectral=args.spectral, method=args.method, curvature=args.curvature,
        adaptive=args.adaptive, momentum=args.momentum, data_dir=args.data_dir,
        log=getattr(args, "log", None), checkpoint=getattr(args, "checkpoint", None),
        resume=getattr(args, "resume", None), quiet=args.quiet if quiet is None else quiet,
        sharpness=getattr(args, "sharpness", False),
        track_spectrum=getattr(args, "track_spectrum", False))


def _check_options(args, optimizers: list[str]) -> None:
    """Refuse options that none of the chosen optimizers uses, and outputs that go nowhere."""
    if args.momentum and "sgd" not in optimizers:
        raise ValueError(f"--momentum is sgd's option; got --optimizer {','.join(optimizers)}")
    if args.adaptive and "esso" not in optimizers:
        raise ValueError(f"--adaptive is esso's option; got --optimizer {','.join(optimizers)}")
    if (getattr(args, "track_spectrum", False) and not args.log
            and not getattr(args, "checkpoint", None)):
        raise ValueError("--track-spectrum records the spectrum in the --log file (and in the "
                         "--checkpoint's history); give --log FILE")


def _run_train(args) -> int:
    from .plots import check_plot
    from .train import train

    _check_options(args, [args.optimizer])
    if args.plot:
        check_plot(args.plot)
    result = train(_config(args))
    summary = result["summary"]
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table([{"quantity": k, "value": json.dumps(v) if isinstance(v, dict)
                             else v} for k, v in summary.items()]))
    sys.stdout.flush()
    if args.plot:
        from .plots import config_title, plot_histories

        config = _config(args)
        sizes = result["net"].sizes if "net" in result else None
        plot_histories({args.optimizer: result["history"]}, args.plot,
                       title=config_title(config, 1, sizes))
    return 0


def add_compare(sub) -> None:
    """The ``compare`` sub-command."""
    p = add_parser(sub, "compare", help="compare optimizers over seeds: table and plots",
                   description="Train every optimizer with every seed; write a CSV and a JSON "
                   "table (mean and std over seeds, rewritten after every finished run) and a "
                   "PNG of the curves. Progress on stderr unless --quiet.")
    _train_args(p, multi=True)
    p.add_argument("--optimizers", default="esso,sgd,adam",
                   help=f"comma-separated names of {', '.join(OPTIMIZERS)}")
    p.add_argument("--seeds", type=count(1), default=5, help="seeds per optimizer")
    p.add_argument("--target", type=accuracy, default=0.95,
                   help="target test accuracy, in (0, 1]")
    p.add_argument("--out", default="compare",
                   help="output prefix of .csv, .json, .png (its folder is created)")
    p.add_argument("--label", default=None, help="label of this run in the table")
    p.add_argument("--no-sharpness", action="store_true", help="skip the flatness measures")
    p.set_defaults(run=_run_compare)


def _optimizer_names(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",")]
    if not text.strip() or any(n not in OPTIMIZERS for n in names) or len(set(names)) < len(
            names):
        raise ValueError(f"expected --optimizers as distinct comma-separated names of "
                         f"{', '.join(OPTIMIZERS)}, got {text!r}")
    return names


def _run_compare(args) -> int:
    from .compare import compare

    configs, names = {}, _optimizer_names(args.optimizers)
    _check_options(args, names)
    for name in names:
        label = args.label or name
        if args.label and len(names) > 1:
            label = f"{args.label} {name}"
        configs[label] = [_config(args, optimizer=name, seed=s, quiet=True)
                          for s in range(args.seed, args.seed + args.seeds)]
    table = compare(configs, args.out, target=args.target, sharpness=not args.no_sharpness,
                    progress=None if args.quiet else sys.stderr)
    if args.json:
        print(json.dumps({"table": table}))
    else:
        columns = ["optimizer", "seeds", "diverged", "test_accuracy_mean", "test_accuracy_std",
                   "test_loss_mean", "train_loss_mean", "seconds_mean",
                   f"reached_{args.target:g}", f"epochs_to_{args.target:g}_mean"]
        print(format_table(table, [c for c in columns if any(c in r for r in table)]))
    return 0


def add_spectrum(sub) -> None:
    """The ``spectrum`` sub-command."""
    from .data import DATASETS

    p = add_parser(sub, "spectrum", help="exact eigenvalues of one sample's Hessian",
                   description="All eigenvalues of one training sample's Hessian "
                   "(structured, eq. (42)) at init or at a checkpoint's theta (whose "
                   "dataset, network and seed are then used).")
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="data set (default: the checkpoint's, else digits)")
    p.add_argument("--data-dir", default=None, help="folder of IDX files (mnist, fashion_mnist)")
    p.add_argument("--sample", type=count(0), default=0, help="index in the training set")
    p.add_argument("--sizes", type=sizes, default=None,
                   help="widths (default: the checkpoint's, else n_0,32,n_out)")
    p.add_argument("--activation", default=None, choices=sorted(ACTIVATIONS),
                   help="hidden activation (default: the checkpoint's, else tanh)")
    p.add_argument("--seed", type=count(0), default=None,
                   help="seed of theta and data (default: the checkpoint's, else 0)")
    p.add_argument("--checkpoint", default=None, help="take theta (and the net) from here")
    p.add_argument("--log", default=None, help="a train --track-spectrum log: show how the "
                   "spectrum evolved over the epochs")
    p.add_argument("--plot", default=None, help="write a stem plot and histogram (PNG)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_run_spectrum)


def _run_spectrum(args) -> int:
    from .cli_spectrum import spectrum_at_theta, spectrum_log
    from .plots import check_plot

    if args.plot:
        check_plot(args.plot)
    return spectrum_log(args) if args.log else spectrum_at_theta(args)
