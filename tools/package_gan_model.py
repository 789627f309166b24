"""Package a finished GAN run as the bundled GAN partner of a PSNR-oriented model.

    python tools/package_gan_model.py runs/superres_x4_gan --data-root ../shared/benchmarks
    python tools/package_gan_model.py runs/superres_x4_real_gan --partner superres-x4-real-gan

Partners (``PARTNERS``): superres-x4-gan of superres-x4, scored on the papers' bicubic LR; superres-x4-real-gan
of superres-x4-real, scored on the real-world benchmark (LR = bicubic ÷4, σ 4 noise, JPEG 45).

1. takes the run's last checkpoint (a GAN run has no "best by PSNR"; ``--step N`` takes another), checks that it
   is its partner's network;
2. scores it and its partner on Set14 and BSD100 (PSNR, SSIM, NIQE: Y, border 4, fp32);
3. writes ``superres/weights/<name>.safetensors`` with the recipe, the reason for it and the scores;
4. sweeps α from the partner to it (``docs/<name>/sweep.{json,md,png}``: the perception–distortion figure) and,
   for superres-x4-gan, draws side-by-side crops HR | bicubic | superres-x4 | α 0.5 | GAN of two benchmark images
   (the real-photo figures of superres-x4-real-gan are ``tools/realworld_figures.py``'s).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import superres
from superres import demo
from superres.models.registry import resolve
from superres.models.weights import load_network, save_network
from superres.quality.sweep import DEFAULT_ALPHAS, alpha_sweep, draw_sweep
from superres.train.checkpoints import list_checkpoints
from superres.train.degrade.recipes import Recipe, get_recipe

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("Set14", "BSD100")
TRAINING_DATA = "BSDS500 train (199) + BSDS500 test (200) + T91 (91): 490 images, disjoint from every benchmark"


@dataclass(frozen=True)
class Partner:
    name: str  # the GAN model, as the registry names it
    base: str  # its PSNR-oriented partner, the α = 0 end
    recipe: str
    reason: str
    degrade: str | None = None  # the benchmark's LR: MATLAB bicubic, or this real-world recipe
    crops: dict[str, demo.Box] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.name.replace("-", "_")


GAN = Partner(
    "superres-x4-gan",
    "superres-x4",
    "superres train superres_x4_gan threads=1 (superres/presets/superres_x4_gan.yaml): "
    "from superres-x4, RaGAN (ESRGAN eq. 1-2, weight 5e-3) + L1 (1e-2) + discriminator feature matching "
    "(pix2pixHD eq. 4, weight 1) in place of ESRGAN's VGG19 perceptual loss",
    "No ImageNet VGG19 is available offline. Of three 400-step candidates from superres-x4 (RaGAN + L1; + VGG19 "
    "features with random weights; + feature matching on the discriminator's own features), feature matching "
    "lowered NIQE the most (Set14 7.08 -> 5.29, BSD100[:20] 6.60 -> 5.04), and at equal PSNR it was lower "
    "than the others, which left checkerboard artefacts. The EMA of G (0.999) has fewer grid artefacts than the "
    "raw G of the same run and keeps the alpha sweep monotone (docs/superres_x4_gan/README.md)",
    crops={"zebra": demo.Box(200, 150, 128, 96), "BSD100/253027": demo.Box(160, 120, 128, 96)},
)
REAL_GAN = Partner(
    "superres-x4-real-gan",
    "superres-x4-real",
    "superres train superres_x4_real_gan threads=1 (superres/presets/superres_x4_real_gan.yaml): from "
    "superres-x4-real's first stage (superres_x4_real.yaml), on its Real-ESRGAN high-order degradations with the "
    "USM-sharpened HR as the pixel target (Real-ESRGAN 4.1), and superres-x4-gan's losses: RaGAN 5e-3 + L1 1e-2 + "
    "feature matching 1",
    "Real-ESRGAN's second stage (GAN from Real-ESRNet on the same degradations), with the losses that worked for "
    "superres-x4-gan; one 2,500-step run, the EMA of G (0.999), packaged at its last step. Started from the first "
    "stage, not from the bundled superres-x4-real (first stage + superres_x4_real_web): from that, the same run "
    "reached NIQE 5.27 / 4.94 on degraded Set14 / BSD100 against 4.63 / 4.38; the siblings blend monotonically",
    degrade="bicubic-noise4-jpeg45",
)
PARTNERS = {p.name: p for p in (GAN, REAL_GAN)}


def score(model: str | Path, data_root: Path, recipe: Recipe | None) -> dict[str, dict[str, float]]:
    report = superres.evaluate(model, data_root, datasets=DATASETS, metrics="psnr,ssim,niqe", progress=False,
                               degrade=recipe, degrade_name=recipe and recipe.name)  # fmt: skip
    return {
        name: {"psnr": round(r.psnr, 3), "ssim": round(r.ssim, 4), "niqe": round(r.niqe, 3)}
        for name, r in report.results.items()
    }


def sweep_markdown(report) -> str:
    lines = ["| point | " + " | ".join(f"{d} PSNR | {d} SSIM | {d} NIQE" for d in report.datasets) + " |"]
    lines.append("|---" * (1 + 3 * len(report.datasets)) + "|")
    for p in report.points:
        cells = [f"{r.psnr:.2f} | {r.ssim:.4f} | {r.niqe:.3f}" for r in p.results.values()]
        lines.append(f"| {p.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def crops(partner: Partner, gan: Path, data_root: Path, docs: Path, overwrite: bool) -> None:
    """HR | bicubic | partner | α 0.5 | GAN on benchmark images, zoomed on a detail."""
    from superres.engine.inference import Upscaler
    from superres.models.interpolation import blend_networks

    half = Upscaler(*blend_networks(resolve(partner.base), gan, 0.5), device="cpu", precision="fp32")
    methods = [
        demo.bicubic_method(),
        demo.model_method(partner.base, device="cpu"),
        demo.upscaler_method("alpha = 0.5", half),
        demo.upscaler_method(partner.name, Upscaler(*load_network(gan), device="cpu", precision="fp32")),
    ]
    for spec, box in partner.crops.items():
        folder, name = spec.split("/") if "/" in spec else ("Set14", spec)
        hr = demo.load_rgb(data_root / folder / "HR" / f"{name}.png")
        title = f"x4 {folder}/{name}: HR | bicubic | {partner.base} | --strength 0.5 | {partner.name}"
        figure = demo.render(demo.compare(hr, methods, detail=box, title=title))
        target = docs / f"crops_{name}.jpg"
        if target.exists() and not overwrite:
            raise SystemExit(f"{target} exists; pass --overwrite")
        figure.image.convert("RGB").save(target, quality=85, optimize=True)  # the repository keeps it small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of the GAN training (superres train ...)")
    parser.add_argument("--partner", choices=sorted(PARTNERS), default=GAN.name)
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "benchmarks")
    parser.add_argument("--output", type=Path, help="default: superres/weights/<name>.safetensors")
    parser.add_argument("--docs", type=Path, help="default: docs/<name>/")
    parser.add_argument("--step", type=int, help="checkpoint step to package (default: the last)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    partner = PARTNERS[args.partner]
    output = args.output or REPO / "superres" / "weights" / f"{partner.stem}.safetensors"
    docs = args.docs or REPO / "docs" / partner.stem

    checkpoints = list_checkpoints(args.run)
    last = next(c for c in reversed(checkpoints) if args.step in (None, c.step))
    network, info = load_network(last.generator)
    _, base = load_network(resolve(partner.base))
    if (info.arch, info.hparams) != (base.arch, base.hparams):
        raise SystemExit(f"{last.generator} is not {partner.base}'s network ({info.arch} {info.hparams})")
    recipe = None if partner.degrade is None else get_recipe(partner.degrade)
    scores = {
        partner.name: score(last.generator, args.data_root, recipe),
        partner.base: score(partner.base, args.data_root, recipe),
    }
    print(json.dumps(scores, indent=1))
    lr = "MATLAB bicubic LR" if partner.degrade is None else f"LR from the HR by the recipe {partner.degrade}"
    protocol = f"x4, {lr}, Y (BT.601), border 4, fp32; NIQE of the SR output"
    metadata = {
        **{k: v for k, v in info.metadata.items() if k != "best_val"},  # best by PSNR: not what a GAN run keeps
        "name": partner.name,
        "recipe": partner.recipe,
        "reason": partner.reason,
        "training_data": TRAINING_DATA,
        "gan_partner_of": partner.base,
        "benchmarks": json.dumps({"protocol": protocol, **scores}),
        "license": "BSD-3-Clause",
    }
    save_network(output, network, info.arch, info.hparams, metadata, overwrite=args.overwrite)

    docs.mkdir(parents=True, exist_ok=True)
    report = alpha_sweep(partner.base, output, args.data_root, DATASETS, DEFAULT_ALPHAS, progress=False,
                         degrade=recipe, degrade_name=partner.degrade)  # fmt: skip
    (docs / "sweep.json").write_text(report.to_json() + "\n")
    (docs / "sweep.md").write_text(sweep_markdown(report))
    inputs = "Perception-distortion, x4" if partner.degrade is None else f"x4, LR {partner.degrade}"
    title = f"{inputs}: {partner.base} (alpha 0) -> {partner.name} (alpha 1)"
    draw_sweep(report, docs / "sweep.png", title=title)
    (docs / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    crops(partner, output, args.data_root, docs, args.overwrite)
    print(sweep_markdown(report))
    print(f"wrote {output} and {docs}/")


if __name__ == "__main__":
    main()
