"""``superres data verify NAME``: is the dataset still what was installed?

Recomputes the SHA-256 of every file the manifest lists and reports the missing, changed and
unlisted ones; counts the prepared sub-images against ``meta_info.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from superres.datasets.home import MANIFEST, data_home, read_json_or_none, read_manifest, require
from superres.datasets.images import image_files
from superres.errors import DatasetError


@dataclass
class VerifyReport:
    name: str
    folder: Path
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # prepared sub-images

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.unlisted or self.problems)

    def lines(self) -> list[str]:
        if self.ok:
            return [f"{self.name}: {self.checked} files as installed, in {self.folder}"]
        out = [f"{self.name}: {self.checked} files checked in {self.folder}"]
        for label, items in (
            ("missing", self.missing),
            ("changed", self.changed),
            ("not in the manifest", self.unlisted),
        ):
            if items:
                shown = ", ".join(items[:5]) + (f", … ({len(items)} in all)" if len(items) > 5 else "")
                out.append(f"  {label}: {shown}")
        out += [f"  {problem}" for problem in self.problems]
        return out


def verify_dataset(name: str, home: Path | None = None, progress: bool = True) -> VerifyReport:
    from tqdm import tqdm

    from superres.models.download import sha256_file

    folder = require(name, home or data_home(), alternative="nothing to verify")
    manifest = read_manifest(folder)
    if manifest is None:
        raise DatasetError(
            f"{folder} has no {MANIFEST} (it was not installed by superres), so there is nothing to compare"
        )
    report = VerifyReport(folder.name, folder)
    listed: dict[str, str] = manifest.get("files", {})
    for rel, expected in tqdm(sorted(listed.items()), unit="file", desc="hashing", disable=not progress, leave=False):
        path = folder / rel
        if not path.is_file():
            report.missing.append(rel)
        elif sha256_file(path) != expected:
            report.changed.append(rel)
        report.checked += 1
    installed = [folder / f for f in manifest.get("folders", {})]
    present = {p.relative_to(folder).as_posix() for d in installed if d.is_dir() for p in image_files(d)}
    report.unlisted = sorted(present - set(listed))
    report.problems = _check_prepared(folder / "sub")
    return report


def _check_prepared(sub: Path) -> list[str]:
    settings = read_json_or_none(sub / "prepared.json")
    if settings is None:
        return (
            [f"sub-images in {sub} are incomplete: run `superres data prepare` again to finish"] if sub.exists() else []
        )
    names = [line.split(" ", 1)[0] for line in (sub / "meta_info.txt").read_text().splitlines() if line]
    problems = []
    for folder in [sub / "HR", *(sub / "LR_bicubic" / f"X{s}" for s in settings["scales"])]:
        have = {p.name for p in folder.glob("*.png")}
        lost = [n for n in names if n not in have]
        if lost:
            problems.append(
                f"{len(lost)} sub-images missing from {folder} (e.g. {lost[0]}); prepare again with --force"
            )
    return problems
