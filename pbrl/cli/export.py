"""``pbrl export RUN_DIR``: a trained policy as an ONNX / TorchScript bundle, checked against the training-time one."""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from pbrl.export.writers import FORMATS


def main(args: Sequence[str]) -> None:
    """``pbrl export RUN_DIR [--format onnx|torchscript] [--out DIR]``."""
    from pbrl.export.bundle import export_run

    parser = argparse.ArgumentParser(prog="pbrl export", description=(
        "Export a trained policy (normalisation, action scaling and clipping inside the graph) with policy.json, "
        "after checking it against the training-time policy."))
    parser.add_argument("run_dir", help="a finished `pbrl train` run directory (config.yaml + policy file)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="onnx")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/export)")
    parser.add_argument("--n-obs", type=int, default=1000,
                        help="perturbed observations added to the visited states in the action check")
    parser.add_argument("--episodes", type=int, default=10,
                        help="closed-loop evaluation episodes (seeds) of the parity check")
    ns = parser.parse_args(list(args))
    meta_path = export_run(ns.run_dir, fmt=ns.format, out=ns.out, n_obs=ns.n_obs, episodes=ns.episodes)
    meta = json.loads(meta_path.read_text())
    parity = meta["parity"]
    print(f"exported {meta['algo']} policy for {meta['task']}: {meta_path.parent / meta['file']} + {meta_path.name}")
    k = len(parity["returns_reference"])
    print(f"parity: max |action diff| {parity['max_abs_diff']:.2e} on {parity['n_obs']} observations (the states of "
          f"{k} closed-loop episodes, and perturbations); mean closed-loop return over {k} seeds "
          f"{parity['return_export']:.2f} exported vs {parity['return_reference']:.2f} training-time "
          f"(tolerance {parity['return_tolerance']:.2f})")
