"""The datasets superres knows by name: where each one is published, what it holds, under which terms.

Every dataset lives as ``<data home>/<Name>/HR`` (+ ``LR_bicubic/X<s>``), whatever the layout of
its archive; a :class:`Folder` says which folder of which archive becomes which folder of the
dataset. Archives are pinned by size and SHA-256 where those are published: TensorFlow Datasets
records both for four of the DIV2K archives (``tensorflow_datasets/url_checksums/div2k.txt``). For
the others only an MD5 is on record — torchSR's dataset code (``torchsr/datasets``), agreeing with
other scripts that check the same files — so they are checked against that MD5, and the SHA-256
of what was installed goes into the dataset's manifest for ``superres data verify``.
"""

from __future__ import annotations

from dataclasses import dataclass

from superres.errors import DatasetError


@dataclass(frozen=True)
class Archive:
    url: str
    size: int | None = None  # bytes, where published
    sha256: str | None = None  # where published
    md5: str | None = None  # the check where only an MD5 is on record
    approx: str = ""  # the publisher's own size statement, where no exact size is known

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def size_text(self) -> str:
        from superres.models.download import human_size

        return human_size(self.size) if self.size is not None else (self.approx or "size not published")


@dataclass(frozen=True)
class Folder:
    """Folder ``source`` of ``archive`` becomes folder ``target`` of the dataset."""

    archive: Archive
    source: str
    target: str  # "HR" or "LR_bicubic/X<s>"
    scale: int | None = None  # the LR scale; None for HR


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    images: int
    licence: str
    homepage: str
    folders: tuple[Folder, ...] = ()
    default_scales: tuple[int, ...] = ()  # LR folders fetched unless --scale says otherwise
    explicit_only: bool = False  # fetched only when named on its own, never as part of a group
    manual: str = ""  # how to get it where there is no direct download

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(sorted({f.scale for f in self.folders if f.scale is not None}))

    def folders_for(self, scales: tuple[int, ...]) -> tuple[Folder, ...]:
        return tuple(f for f in self.folders if f.scale is None or f.scale in scales)

    def archives_for(self, scales: tuple[int, ...]) -> tuple[Archive, ...]:
        return tuple(dict.fromkeys(f.archive for f in self.folders_for(scales)))

    @property
    def size_text(self) -> str:
        """The download for the HR images (and the LR folders fetched by default)."""
        archives = self.archives_for(self.default_scales)
        if not archives:
            return "manual download"
        if all(a.size is not None for a in archives):
            from superres.models.download import human_size

            return human_size(sum(a.size or 0 for a in archives))
        return " + ".join(a.size_text for a in archives)


# ------------------------------------------------------------------------------ benchmarks

# The EDSR authors' bundle of the four classic test sets (Lim et al., CVPR-W 2017), with the
# MATLAB-bicubic LR images ×2/×3/×4 (named <stem>x<s>.png) and the original file names.
_EDSR_BENCHMARK = Archive(
    "https://cv.snu.ac.kr/research/EDSR/benchmark.tar", md5="4ace41d33c2384b97e6b320cd0afd6ba",
    approx="about 250 MB with the other test sets",  # the EDSR README's figure
)  # fmt: skip


def _benchmark(name: str, folder: str, description: str, images: int, licence: str, homepage: str) -> DatasetInfo:
    base = f"benchmark/{folder}"
    folders = [Folder(_EDSR_BENCHMARK, f"{base}/HR", "HR")]
    folders += [Folder(_EDSR_BENCHMARK, f"{base}/LR_bicubic/X{s}", f"LR_bicubic/X{s}", s) for s in (2, 3, 4)]
    return DatasetInfo(name, description, images, licence, homepage, tuple(folders), default_scales=(2, 3, 4))


# ----------------------------------------------------------------------------------- DIV2K

_DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K"
_DIV2K_TERMS = "academic research only (NTIRE 2017; Agustsson & Timofte, CVPR-W 2017)"


def _div2k(split: str, hr: Archive, lr: dict[int, Archive], description: str, images: int) -> DatasetInfo:
    folders = [Folder(hr, f"DIV2K_{split}_HR", "HR")]
    folders += [Folder(a, f"DIV2K_{split}_LR_bicubic/X{s}", f"LR_bicubic/X{s}", s) for s, a in lr.items()]
    name = "DIV2K" if split == "train" else "DIV2K-valid"
    return DatasetInfo(name, description, images, _DIV2K_TERMS, f"{_DIV2K}/", tuple(folders))


# One tar with the HR images and LR ×2/×3/×4 (bicubic and "unknown"); only the folders asked for are extracted.
_FLICKR2K = Archive(
    "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar", md5="5d3f39443d5e9489bff8963f8f26cb03",
    approx="size not published",
)  # fmt: skip

CATALOG: tuple[DatasetInfo, ...] = (
    _benchmark("Set5", "Set5", "5 test images (Bevilacqua et al., BMVC 2012)", 5,
               "research use", "http://people.rennes.inria.fr/Aline.Roumy/results/SR_BMVC12.html"),
    _benchmark("Set14", "Set14", "14 test images (Zeyde et al., 2010)", 14,
               "research use", "https://sites.google.com/site/romanzeyde/research-interests"),
    _benchmark("BSD100", "B100", "100 test images of BSDS300 (Martin et al., ICCV 2001)", 100,
               "non-commercial research and education (BSDS)",
               "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/"),
    _benchmark("Urban100", "Urban100", "100 urban scenes (Huang et al., CVPR 2015)", 100,
               "research use", "https://github.com/jbhuang0604/SelfExSR"),
    DatasetInfo(
        "Manga109", "109 manga volumes' covers and pages (Matsui et al., MTAP 2017)", 109,
        "academic research only, after accepting the Manga109 terms; the images are the artists' copyright",
        "http://www.manga109.org/en/download.html", explicit_only=True,
        manual="Manga109 is handed out by its authors after you accept its terms at "
        "http://www.manga109.org/en/download.html; download it there, then run "
        "`superres data add Manga109 PATH` (a folder or archive of the images)",
    ),
    _div2k(
        "train",
        Archive(f"{_DIV2K}/DIV2K_train_HR.zip", 3_530_603_713,
                "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
        {
            2: Archive(f"{_DIV2K}/DIV2K_train_LR_bicubic_X2.zip", 925_390_592,
                       "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"),
            3: Archive(f"{_DIV2K}/DIV2K_train_LR_bicubic_X3.zip", md5="ad80b9fe40c049a07a8a6c51bfab3b6d"),
            4: Archive(f"{_DIV2K}/DIV2K_train_LR_bicubic_X4.zip", md5="76c43ec4155851901ebbe8339846d93d"),
        },
        "800 2K training images, NTIRE 2017 (Agustsson & Timofte); LR bicubic ×2/×3/×4 with --scale", 800,
    ),
    _div2k(
        "valid",
        Archive(f"{_DIV2K}/DIV2K_valid_HR.zip", 448_993_893,
                "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
        {
            2: Archive(f"{_DIV2K}/DIV2K_valid_LR_bicubic_X2.zip", 117_763_600,
                       "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"),
            3: Archive(f"{_DIV2K}/DIV2K_valid_LR_bicubic_X3.zip", md5="18b1d310f9f88c13618c287927b29898"),
            4: Archive(f"{_DIV2K}/DIV2K_valid_LR_bicubic_X4.zip", md5="21962de700c8d368c6ff83314480eff0"),
        },
        "100 2K validation images of DIV2K (0801–0900); LR bicubic ×2/×3/×4 with --scale", 100,
    ),
    DatasetInfo(
        "Flickr2K", "2650 2K images from Flickr, collected by the EDSR authors (Lim et al., CVPR-W 2017)", 2650,
        "research use; the photos keep their Flickr licences", "https://github.com/limbee/NTIRE2017",
        (Folder(_FLICKR2K, "Flickr2K/Flickr2K_HR", "HR"),
         *(Folder(_FLICKR2K, f"Flickr2K/Flickr2K_LR_bicubic/X{s}", f"LR_bicubic/X{s}", s) for s in (2, 3, 4))),
    ),
)  # fmt: skip

# Names that stand for several datasets. Datasets with extra terms (explicit_only) are never in one.
GROUPS: dict[str, tuple[str, ...]] = {"benchmarks": ("Set5", "Set14", "BSD100", "Urban100")}


def names() -> list[str]:
    return [d.name for d in CATALOG]


def find(name: str) -> DatasetInfo | None:
    """The catalog entry called ``name`` (exact, else case-insensitive), or None."""
    for info in CATALOG:
        if info.name == name:
            return info
    return next((info for info in CATALOG if info.name.casefold() == name.casefold()), None)


def get(name: str) -> DatasetInfo:
    info = find(name)
    if info is None:
        raise DatasetError(
            f"unknown dataset {name!r}; known: {', '.join(names())} (groups: {', '.join(GROUPS)}); "
            f"add your own images with `superres data add {name} PATH`"
        )
    return info


def expand(requested: list[str]) -> list[DatasetInfo]:
    """Catalog entries for names and group names, in order, each once."""
    out: dict[str, DatasetInfo] = {}
    for name in requested:
        group = GROUPS.get(name.casefold())
        for member in group or (name,):
            info = get(member)
            if group is not None and info.explicit_only:
                continue
            out.setdefault(info.name, info)
    return list(out.values())
