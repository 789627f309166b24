"""Package a finished ``superres train superres_x4`` run as the bundled default model.

    python tools/package_default_model.py runs/superres_x4 --data-root ../shared/benchmarks

1. scores the run's best generator (by Set5 validation) on Set5, Set14 and BSD100 with the papers'
   protocol (``superres.evaluate``: ×4, Y channel, border 4, fp32);
2. writes ``superres/weights/superres_x4.safetensors`` — the weights with metadata: recipe, training
   data, step, and those scores;
3. writes the training curve (``docs/superres_x4/curve.csv`` and ``curve.png``) from the run's log.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

import superres
from superres.models.weights import load_network, save_network

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("Set5", "Set14", "BSD100")
RECIPE = (
    "superres train superres_x4 threads=1 "
    "(superres/presets/superres_x4.yaml: BSDS500_test, BSDS500_train, T91 in the data home)"
)
TRAINING_DATA = "BSDS500 train (199) + BSDS500 test (200) + T91 (91): 490 images, disjoint from every benchmark"


def score(model: superres.Upscaler, data_root: Path) -> dict[str, dict[str, float]]:
    report = superres.evaluate(model, data_root, datasets=DATASETS, scale=4, progress=False)
    results = report.to_dict()["results"]
    return {name: {"psnr": round(r["psnr"], 3), "ssim": round(r["ssim"], 4)} for name, r in results.items()}


def read_curve(log: Path) -> list[dict[str, float]]:
    """One row per validation: step, mean training L1 since the previous one, validation PSNRs."""
    rows: dict[int, dict[str, float]] = {}
    losses: list[float] = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "loss/pixel" in entry:
            losses.append(entry["loss/pixel"])
        for name in DATASETS:
            if f"val/{name}/psnr" in entry:
                row = rows.setdefault(entry["step"], {"step": entry["step"]})
                row[f"{name}_psnr"] = entry[f"val/{name}/psnr"]
                if losses and "train_l1" not in row:
                    row["train_l1"] = sum(losses) / len(losses)
                    losses = []
    return [rows[step] for step in sorted(rows)]


def write_curve_csv(rows: list[dict[str, float]], path: Path) -> None:
    fields = sorted({key for row in rows for key in row}, key=lambda k: (k != "step", k))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def draw_curve(rows: list[dict[str, float]], path: Path, floors: dict[str, float]) -> None:
    """Validation PSNR against step, one line per set, with the issue's floor for each set dashed."""
    width, height, margin = 720, 400, 56
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    colours = {"Set5": (200, 40, 40), "Set14": (40, 90, 200)}
    values = [row[f"{n}_psnr"] for row in rows for n in colours if f"{n}_psnr" in row] + list(floors.values())
    low, high = min(values) - 0.3, max(values) + 0.3
    last = max(row["step"] for row in rows)

    def xy(step: float, psnr: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * step / last
        y = height - margin - (height - 2 * margin) * (psnr - low) / (high - low)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline=(120, 120, 120))
    for name, colour in colours.items():
        points = [xy(row["step"], row[f"{name}_psnr"]) for row in rows if f"{name}_psnr" in row]
        draw.line(points, fill=colour, width=2)
        if name in floors:
            y = xy(0, floors[name])[1]
            for x in range(margin, width - margin, 12):
                draw.line([(x, y), (x + 6, y)], fill=colour, width=1)
        draw.text((points[-1][0] - 120, points[-1][1] - 18), f"{name} {rows[-1][f'{name}_psnr']:.2f} dB", fill=colour, font=font)
    draw.text((margin, 16), "superres-x4: validation PSNR (Y, x4, EMA weights); dashed: issue floor", fill="black", font=font)
    draw.text((width // 2 - 30, height - margin + 20), f"step (0 .. {last})", fill="black", font=font)
    draw.text((4, margin - 16), f"{high:.1f} dB", fill="black", font=font)
    draw.text((4, height - margin - 6), f"{low:.1f} dB", fill="black", font=font)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of superres train superres_x4")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "benchmarks")
    parser.add_argument("--output", type=Path, default=REPO / "superres" / "weights" / "superres_x4.safetensors")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "superres_x4")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()

    best = args.run / "best.safetensors"
    network, info = load_network(best)
    scores = score(superres.Upscaler(network, info, device="cpu", precision="fp32"), args.data_root)
    print(json.dumps(scores, indent=1))
    metadata = {
        **info.metadata,
        "name": "superres-x4",
        "recipe": RECIPE,
        "training_data": TRAINING_DATA,
        "benchmarks": json.dumps({"protocol": "x4, MATLAB bicubic LR, Y (BT.601), border 4, fp32", **scores}),
        "license": "BSD-3-Clause",
    }
    save_network(args.output, network, info.arch, info.hparams, metadata, overwrite=args.overwrite)
    args.docs.mkdir(parents=True, exist_ok=True)
    rows = read_curve(args.run / "log.jsonl")
    write_curve_csv(rows, args.docs / "curve.csv")
    draw_curve(rows, args.docs / "curve.png", floors={"Set5": 30.8, "Set14": 27.6})
    (args.docs / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(f"wrote {args.output} and {args.docs}/")


if __name__ == "__main__":
    main()
