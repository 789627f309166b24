"""Mutation scores from mutmut's results in mutants/ (see TESTING.md and tools/mutation.sh).

    python tools/mutation_report.py                      killed / total per module, with the survivors
    python tools/mutation_report.py MODULE               the same for one module (dotted name)
    python tools/mutation_report.py --survivors MODULE   the surviving mutants' names, one a line
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

MUTANTS = Path(__file__).resolve().parents[1] / "mutants"
# mutmut's exit codes (mutmut.stats.status_by_exit_code): 1 and 3 are kills, 0 a survivor
KILLED, SURVIVED, NOT_CHECKED = {1, 3}, {0}, {None}
TIMEOUT = {24, -24, 36, 152, 255}


def results() -> dict[str, dict[str, int | None]]:
    """Exit code of every mutant, by module (dotted name)."""
    by_module = {}
    for meta in sorted(MUTANTS.glob("superres/**/*.py.meta")):
        module = ".".join(meta.relative_to(MUTANTS).with_suffix("").with_suffix("").parts)
        by_module[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return by_module


def status(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in TIMEOUT:
        return "timeout"  # a mutant that hangs is caught, by the clock
    if code in NOT_CHECKED:
        return "not checked"
    return {33: "no tests", 5: "no tests"}.get(code, f"other ({code})")


def main(argv: list[str]) -> int:
    if not MUTANTS.is_dir():
        print("no mutants/ yet: run tools/mutation.sh MODULE first", file=sys.stderr)
        return 1
    everything = results()
    if argv[:1] == ["--survivors"]:
        for name, code in everything.get(argv[1], {}).items():
            if code in SURVIVED:
                print(name)
        return 0
    modules = argv or list(everything)
    for module in modules:
        codes = everything.get(module, {})
        counts = Counter(status(code) for code in codes.values())
        checked = len(codes) - counts["not checked"]
        caught = counts["killed"] + counts["timeout"]
        print(f"{module}: {caught} / {checked} killed ({dict(counts)})")
        for name, code in codes.items():
            if code in SURVIVED:
                print(f"    survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
