"""``esso-ref analyze`` and ``esso-ref summary``: data-set-scale exact spectra (docs/analysis.md).

Registered in the main parser by :func:`add_analysis_commands`.
"""

from __future__ import annotations

import json
import sys

from .cli_common import add_parser, count, positive_float

__all__ = ["add_analysis_commands"]


def _sizes(text: str) -> list[int]:
    import argparse

    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integer widths such as 64,32,10, got {text!r}") from None


def _add_analyze(sub) -> None:
    p = add_parser(sub, "analyze", help="exact per-sample spectra of a whole data set (Zarr)",
                       description="Every sample's exact Hessian (and GGN) eigenvalues, their "
                       "statistics and optional mini-batch spectra, computed on Dask in chunks "
                       "into a resumable Zarr store (docs/analysis.md).")
    p.add_argument("--dataset", default="digits",
                   help="digits, spirals, teacher, mnist or fashion_mnist")
    p.add_argument("--data-dir", default=None, help="folder of IDX files (mnist, fashion_mnist)")
    p.add_argument("--split", default="train", help="train or test")
    p.add_argument("--limit", type=count(1), default=None, help="only the first N samples")
    p.add_argument("--out", required=True, help="the Zarr store to create or complete")
    p.add_argument("--sizes", type=_sizes, default=None, help="widths (default n_0,32,n_out)")
    p.add_argument("--activation", default="tanh", help="hidden activation")
    p.add_argument("--no-bias", action="store_true", help="a network without biases")
    p.add_argument("--seed", type=count(0), default=0, help="seed of the initial theta")
    p.add_argument("--checkpoint", default=None, help="take the net and theta from here")
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument("--ggn", action="store_true", help="also the Gauss-Newton spectra")
    p.add_argument("--batch-size", type=count(1), default=None,
                   help="also exact spectra of disjoint mini-batches of this size (B r <= P)")
    p.add_argument("--chunk-size", type=count(1), default=None,
                   help="samples per chunk, a multiple of 16 (256)")
    p.add_argument("--backend", default="numpy", help="numpy or cupy (inside each task)")
    p.add_argument("--scheduler", default="threads", help="threads, sync or processes")
    p.add_argument("--workers", type=count(1), default=None, help="local threads / processes")
    p.add_argument("--address", default=None, help="tcp://HOST:PORT of a dask scheduler")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds to reach --address")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a store of another run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run report as JSON")
    p.set_defaults(run=_run_analyze)


def _run_analyze(args) -> int:
    from .analysis import AnalysisConfig, analyze, check_output

    check_output(args.out, "--out")
    config = AnalysisConfig(
        dataset=args.dataset, data_dir=args.data_dir, split=args.split, limit=args.limit,
        sizes=args.sizes, activation=args.activation, bias=not args.no_bias, seed=args.seed,
        checkpoint=args.checkpoint, dtype=args.dtype, ggn=args.ggn,
        batch_size=args.batch_size, chunk_size=args.chunk_size, backend=args.backend)
    try:
        report = analyze(config, args.out, scheduler=args.scheduler, workers=args.workers,
                         address=args.address, timeout=args.timeout, overwrite=args.overwrite,
                         progress=not (args.quiet or args.json))
    except ConnectionError as err:
        print(f"esso-ref analyze: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        print(f"esso-ref analyze: {report['store']}: computed {len(report['computed_chunks'])} "
              f"chunks and {len(report['computed_batches'])} mini-batches in "
              f"{report['seconds']:.2f} s; {report['skipped_chunks']} chunks were complete")
    return 0


def _add_summary(sub) -> None:
    p = add_parser(sub, "summary", help="tables and figures of an analysis store",
                       description="Per-class and overall tables of the largest eigenvalue, "
                       "negative fraction and trace; spectral density; mini-batch outliers.")
    p.add_argument("store", help="a store written by esso-ref analyze")
    p.add_argument("--plot", default=None, help="write the summary figure to this PNG")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(run=_run_summary)


def _table(summary: dict) -> str:
    meta = summary["meta"]
    lines = [f"{meta['dataset']} ({meta['split']}, N = {meta['num_samples']}), MLP "
             f"{meta['sizes']} {meta['activation']}, P = {meta['num_params']}"]
    head = "  {:>8} {:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>12}"
    for curvature in meta["rank"]:
        res = summary[curvature]
        lines.append(f"{curvature} (r = {meta['rank'][curvature]}):")
        lines.append(head.format("class", "n", "lmax mean", "lmax q05", "lmax q50", "lmax q95",
                                 "neg frac", "trace mean"))
        for name, row in [*res["per_class"].items(), ("all", res["overall"])]:
            lines.append(f"  {name:>8} {row['n']:>6} {row['largest_mean']:12.4e} "
                         f"{row['largest_q05']:12.4e} {row['largest_q50']:12.4e} "
                         f"{row['largest_q95']:12.4e} {row['negative_fraction']:10.3e} "
                         f"{row['trace_mean']:12.4e}")
        if "batches" in res:
            b = res["batches"]
            lines.append(f"  mini-batches: {b['num_batches']} of B = {meta['batch_size']}; "
                         f"outliers beyond the bulk edge: median {b['outliers_median']:g} "
                         f"(classes: {b['num_classes']})")
    return "\n".join(lines)


def _run_summary(args) -> int:
    from .analysis import summarize

    if args.plot:
        from .plots import check_plot

        check_plot(args.plot)
    summary = summarize(args.store)
    if args.plot:
        from .analysis.figure import plot_summary

        plot_summary(summary, args.plot)
    print(json.dumps(summary) if args.json else _table(summary))
    return 0


def add_analysis_commands(sub) -> None:
    """Add ``analyze`` and ``summary`` to the ``esso-ref`` sub-command parsers ``sub``."""
    _add_analyze(sub)
    _add_summary(sub)
