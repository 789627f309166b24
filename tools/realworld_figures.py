"""Side-by-side figures of real JPEG photos upscaled ×4, and how strongly each output shows the 8×8 grid.

    python tools/realworld_figures.py --photos ../shared/train/BSDS500_test \\
        --models bicubic superres-x4 superres-x4-real superres-x4-real-gan \\
        --x4plus ../shared/weights/RealESRGAN_x4plus_fp16round.pth
    python tools/realworld_figures.py --strength-of superres-x4-real --out docs/superres_x4_real_gan

Each photo is a 128×128 crop of a real JPEG (top-left on the JPEG's 8-pixel grid), upscaled whole; the
figure shows the input (nearest neighbour) and each output, 1:1, for the crop's central 64×64 input
pixels. Top row: the photo as it is (BSDS500's JPEGs are of quality ~92: noisy, nearly gridless);
bottom row: the same crop saved again as JPEG quality 30, as a messaging app would, so that its 8×8
grid shows. The number under each panel is the block-grid ratio of the whole output
(:func:`superres.quality.blockiness.block_grid_ratio`): about 1 means no visible grid; an output
above bicubic's has sharpened the JPEG's blocks into a mesh.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import superres
from superres.quality.blockiness import block_grid_ratio
from superres.quality.imresize import imresize
from superres.train.degrade.jpeg import jpeg_roundtrip

REPO = Path(__file__).resolve().parents[1]
# (file, left, top): the photo (foliage behind the people) and two more of our choosing.
CROPS = (("102062.jpg", 248, 120), ("246009.jpg", 176, 96), ("69000.jpg", 184, 112))
SHOWN = 64  # input pixels shown per side
RECOMPRESS = 30  # JPEG quality of the second row
Panel = tuple[str, np.ndarray, float]  # label, pixels shown, block-grid ratio of the whole output


def upscale(model: str, image: np.ndarray, x4plus: Path | None) -> np.ndarray:
    if model == "bicubic":
        return imresize(image, 4.0)
    source = x4plus if model == "RealESRGAN_x4plus" else model
    return superres.load_model(source, device="cpu", precision="fp32").upscale(image)


def figure(rows: list[list[Panel]], path: Path) -> None:
    size, gap, label_h = SHOWN * 4, 6, 34
    font = ImageFont.load_default(size=13)
    columns = len(rows[0])
    canvas = Image.new("RGB", (size * columns + gap * (columns - 1), (size + label_h) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, panels in enumerate(rows):
        y = r * (size + label_h)
        for i, (label, image, ratio) in enumerate(panels):
            x = i * (size + gap)
            canvas.paste(Image.fromarray(image), (x, y))
            draw.text((x + 4, y + size + 2), label, fill="black", font=font)
            draw.text((x + 4, y + size + 17), f"block-grid ratio {ratio:.2f}", fill=(90, 90, 90), font=font)
    canvas.save(path, optimize=True)


def output_panel(label: str, out: np.ndarray) -> Panel:
    """A ×4 output cut to the shown centre, with the block-grid ratio of the whole output."""
    lo, hi = (128 - SHOWN) // 2 * 4, (128 + SHOWN) // 2 * 4
    return label, out[lo:hi, lo:hi], block_grid_ratio(out, 4)


def compare(crop: np.ndarray, models: list[str], x4plus: Path | None, label: str) -> list[Panel]:
    """The input and each model's output, cut to the shown centre, with the block-grid ratio of the whole."""
    lo, hi = (128 - SHOWN) // 2, (128 + SHOWN) // 2
    shown_input = np.repeat(np.repeat(crop[lo:hi, lo:hi], 4, axis=0), 4, axis=1)
    panels = [(f"{label} (nearest x4)", shown_input, block_grid_ratio(crop))]
    return panels + [output_panel(model, upscale(model, crop, x4plus)) for model in models]


def blended(model: str, alpha: float) -> superres.Upscaler:
    return superres.load_model(model, device="cpu", precision="fp32", strength=alpha)


def strength_panels(crop: np.ndarray, model: str, alphas: list[float]) -> list[Panel]:
    """``model`` blended with its GAN partner at each α (``--strength``), cut to the shown centre."""
    return [
        output_panel(f"{model} --strength {alpha:g}", blended(model, alpha).upscale(crop)) for alpha in alphas
    ]


def read_crops(photos: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Each of ``CROPS``: the photo's file name and its 128×128 crop."""
    for name, left, top in CROPS:
        photo = np.asarray(Image.open(photos / name).convert("RGB"))
        yield name, np.ascontiguousarray(photo[top : top + 128, left : left + 128])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "train" / "BSDS500_test")
    parser.add_argument("--models", nargs="+", default=["bicubic", "superres-x4", "superres-x4-real"])
    parser.add_argument("--x4plus", type=Path, help="RealESRGAN_x4plus weights file: adds it as the last panel")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "superres_x4_real")
    parser.add_argument("--strength-of", metavar="MODEL", help="instead: MODEL blended with its GAN partner, per α")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0])
    args = parser.parse_args()
    if args.strength_of:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, crop in read_crops(args.photos):
            rows = [strength_panels(c, args.strength_of, args.alphas) for c in (crop, jpeg_roundtrip(crop, RECOMPRESS))]
            figure(rows, args.out / f"strength_{Path(name).stem}.png")
        return
    models = list(args.models) + (["RealESRGAN_x4plus"] if args.x4plus else [])
    args.out.mkdir(parents=True, exist_ok=True)
    ratios: dict[str, dict[str, float]] = {}
    for name, crop in read_crops(args.photos):
        rows = [
            compare(crop, models, args.x4plus, "photo"),
            compare(jpeg_roundtrip(crop, RECOMPRESS), models, args.x4plus, f"JPEG q{RECOMPRESS}"),
        ]
        ratios[name] = {
            kind: {("input" if i == 0 else label): round(ratio, 3) for i, (label, _, ratio) in enumerate(row)}
            for kind, row in zip(("photo", f"jpeg_q{RECOMPRESS}"), rows, strict=True)
        }
        print(name, ratios[name], flush=True)
        figure(rows, args.out / f"{Path(name).stem}.png")
    (args.out / "block_grid.json").write_text(json.dumps(ratios, indent=1) + "\n")


if __name__ == "__main__":
    main()
