"""Package a finished ``superres train superres_x4_real_web`` run as the bundled ``superres-x4-real`` model.

    python tools/package_real_model.py runs/superres_x4_real_web --data-root ../shared/benchmarks

1. scores the run's best generator (by validation on Set5 degraded by the issue's recipe) on the
   real-world benchmark — Set14 and BSD100 degraded by ``bicubic-noise4-jpeg45`` (MATLAB bicubic ÷4,
   Gaussian σ 4, JPEG 45), Y channel, border 4, with NIQE — next to bicubic and superres-x4; and on
   the other recipes (``superres eval --degrade``: PSNR/SSIM); and on the papers' clean protocol;
2. writes ``superres/weights/superres_x4_real.safetensors`` — the weights with metadata: recipe,
   training data, step, and those scores;
3. writes ``docs/superres_x4_real/scores.json`` and the validation curve ``curve.csv``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from package_default_model import DATASETS, TRAINING_DATA, read_curve, score, write_curve_csv

import superres
from superres.models.weights import load_network, save_network
from superres.quality.evaluation import evaluate
from superres.train.degrade.recipes import RECIPES, get_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPE = (
    "superres train superres_x4_real, then superres train superres_x4_real_web, data.root=../shared threads=1 "
    "(superres/presets/superres_x4_real.yaml, superres_x4_real_web.yaml)"
)
REAL_WORLD = "bicubic-noise4-jpeg45"
REAL_SETS = ("Set14", "BSD100")


def recipe_scores(models: dict[str, object], data_root: Path, name: str, metrics: str) -> dict[str, dict[str, dict]]:
    """``{model: {dataset: {psnr, ssim[, niqe]}}}`` on Set14 and BSD100 degraded by the recipe ``name``."""
    table: dict[str, dict[str, dict]] = {}
    for label, model in models.items():
        report = evaluate(model, data_root, REAL_SETS, degrade=get_recipe(name), degrade_name=name,
                          metrics=metrics, progress=False, device="cpu")  # fmt: skip
        table[label] = {
            s: {k: round(v, 4) for k, v in (("psnr", r.psnr), ("ssim", r.ssim), ("niqe", r.niqe)) if v is not None}
            for s, r in report.results.items()
        }
        print(name, label, json.dumps(table[label]), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of superres train superres_x4_real")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "benchmarks")
    parser.add_argument("--output", type=Path, default=REPO / "superres" / "weights" / "superres_x4_real.safetensors")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "superres_x4_real")
    parser.add_argument("--x4plus", type=Path, help="RealESRGAN_x4plus weights, to add it to the table")
    parser.add_argument("--previous", type=Path, help="the weights this run replaces, to add them to the tables")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()

    network, info = load_network(args.run / "best.safetensors")
    ours = superres.Upscaler(network, info, device="cpu", precision="fp32")
    models: dict[str, object] = {"bicubic": "bicubic", "superres-x4": "superres-x4", "superres-x4-real": ours}
    if args.x4plus:
        models["RealESRGAN_x4plus"] = superres.load_model(args.x4plus, device="cpu", precision="fp32")
    if args.previous:
        models["superres-x4-real (previous)"] = superres.load_model(args.previous, device="cpu", precision="fp32")
    real = recipe_scores(models, args.data_root, REAL_WORLD, "psnr,ssim,niqe")
    others = {name: recipe_scores(models, args.data_root, name, "psnr,ssim") for name in RECIPES if name != REAL_WORLD}
    clean = score(ours, args.data_root)
    print("clean", json.dumps(clean))
    protocol = f"x4, LR from HR by the recipe {REAL_WORLD}, Y (BT.601), border 4, fp32"
    metadata = {
        **info.metadata,
        "name": "superres-x4-real",
        "recipe": RECIPE,
        "training_data": TRAINING_DATA,
        "benchmarks": json.dumps({"protocol": "x4, MATLAB bicubic LR, Y (BT.601), border 4, fp32", **clean}),
        "real_world_benchmarks": json.dumps({"protocol": protocol, **real["superres-x4-real"]}),
        "license": "BSD-3-Clause",
    }
    save_network(args.output, network, info.arch, info.hparams, metadata, overwrite=args.overwrite)
    args.docs.mkdir(parents=True, exist_ok=True)
    write_curve_csv(read_curve(args.run / "log.jsonl"), args.docs / "curve.csv")
    scores = {
        "real_world": {"protocol": protocol, "models": real},
        "other_recipes": others,
        "clean": {"datasets": DATASETS, **clean},
    }
    (args.docs / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(f"wrote {args.output} and {args.docs}/")


if __name__ == "__main__":
    main()
