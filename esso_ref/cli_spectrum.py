"""``esso-ref spectrum``: one sample's exact spectrum, or its evolution in a training log."""

from __future__ import annotations

import json

__all__ = ["spectrum_at_theta", "spectrum_log"]


def _from_checkpoint(args):
    """(data, net, theta, dataset name) of ``--checkpoint``; explicit options must agree."""
    from .checkpoint import load_checkpoint
    from .data import load_dataset

    ckpt = load_checkpoint(args.checkpoint)
    net, cfg = ckpt["net"], ckpt["config"] if isinstance(ckpt["config"], dict) else {}
    saved = {"--dataset": cfg.get("dataset"), "--sizes": list(net.sizes),
             "--activation": net.activation, "--seed": cfg.get("seed", 0)}
    given = {"--dataset": args.dataset, "--sizes": args.sizes, "--activation": args.activation,
             "--seed": args.seed}
    diffs = [f"{flag} {given[flag]!r} (the checkpoint has {saved[flag]!r})"
             for flag in saved if given[flag] is not None and given[flag] != saved[flag]]
    if diffs:
        raise ValueError(f"options that contradict checkpoint {args.checkpoint}: "
                         + "; ".join(diffs) + "; drop them")
    if saved["--dataset"] is None:
        raise ValueError(f"checkpoint {args.checkpoint} names no dataset; pass --dataset")
    data = load_dataset(saved["--dataset"], args.data_dir or cfg.get("data_dir"),
                        saved["--seed"])
    if net.sizes[0] != data.num_inputs:
        raise ValueError(f"checkpoint {args.checkpoint} holds {net!r}, whose input width "
                         f"{net.sizes[0]} does not fit {data.name} (n_0 = {data.num_inputs})")
    return data, net, ckpt["theta"], saved["--dataset"]


def _fresh(args):
    from .data import load_dataset
    from .mlp import MLP

    name, seed = args.dataset or "digits", args.seed or 0
    data = load_dataset(name, args.data_dir, seed)
    net = MLP(args.sizes or [data.num_inputs, 32, data.num_outputs],
              args.activation or "tanh", data.loss)
    if net.sizes[0] != data.num_inputs or net.sizes[-1] != data.num_outputs:
        raise ValueError(f"expected --sizes from {data.num_inputs} to {data.num_outputs} for "
                         f"{name}, got {list(net.sizes)}")
    return data, net, net.init(seed), name


def spectrum_at_theta(args) -> int:
    """All eigenvalues of one training sample's Hessian at init or at a checkpoint."""
    import numpy as np

    from .curvature import eigenvalues
    from .train import check_sample_memory

    data, net, theta, name = _from_checkpoint(args) if args.checkpoint else _fresh(args)
    if not 0 <= args.sample < data.X_train.shape[0]:
        raise ValueError(f"expected --sample in [0, {data.X_train.shape[0] - 1}], "
                         f"got {args.sample}")
    check_sample_memory(net, "spectrum")
    i = args.sample
    spec = eigenvalues(net, theta, data.X_train[i], data.y_train[i:i + 1])
    mu = np.asarray(spec.values)
    negative, zero, _ = spec.inertia()
    out = {"sizes": list(net.sizes), "P": net.num_params, "rank_bound": net.rank_bound,
           "num_zeros": spec.num_zeros, "min": float(mu.min()) if mu.size else 0.0,
           "max": float(mu.max()) if mu.size else 0.0, "negative": negative,
           "zero_to_rounding": zero - spec.num_zeros, "eigenvalues": mu.tolist()}
    if args.json:
        print(json.dumps(out))
    else:
        rounding = (f", {out['zero_to_rounding']} zero to rounding"
                    if out["zero_to_rounding"] else "")
        print(f"{net!r}: P = {net.num_params}, r = {net.rank_bound}; {mu.size} eigenvalues "
              f"can be non-zero ({negative} negative{rounding}), {spec.num_zeros} are exactly 0")
        print(f"min {out['min']:.6e}  max {out['max']:.6e}")
    if args.plot:
        from .plots import plot_spectrum

        plot_spectrum(mu, spec.num_zeros, args.plot,
                      f"{name}, MLP {list(net.sizes)} {net.activation}, training sample {i}")
    return 0


def spectrum_log(args) -> int:
    """How one sample's spectrum evolved in a ``train --track-spectrum --log`` file."""
    from ._files import read_jsonl
    from .cli_common import format_table

    rows = [r for r in read_jsonl(args.log, "training log")[0] if "spectrum" in r]
    keys = ("min", "max", "negative", "values")
    if not rows or any(not isinstance(r["spectrum"], dict) or any(k not in r["spectrum"]
                                                                  for k in keys)
                       or "epoch" not in r for r in rows):
        raise ValueError(f"expected epochs with a 'spectrum' entry in {args.log}, got none; "
                         "train with --track-spectrum --log FILE")
    out = [{"epoch": r["epoch"], **{k: r["spectrum"][k] for k in keys[:3]}} for r in rows]
    if "run" in rows[0]:
        out = [dict(o, run=r["run"]) for o, r in zip(out, rows, strict=True)]
    if args.json:
        print(json.dumps(out))
    else:
        print(format_table(out))
    if args.plot:
        from .plots import plot_spectrum_evolution

        plot_spectrum_evolution(rows, args.plot)
    return 0
