"""Line coverage per package, with a floor: what `tox` prints after the tests.

Reads the ``.coverage`` data that ``pytest --cov`` left, sums statements and missed
lines per package (``proto``, ``relay`` for its top-level modules, and each
subpackage of ``relay``), prints one line each, and exits 1 when a package is below
``FLOOR`` percent — naming it, so the fix starts at the right place. A package is the
directory a module lives in: ``relay/worker/providers/smtp.py`` counts for
``relay.worker.providers``, not for ``relay.worker``.

Usage: ``python tests/coverage_floor.py [--floor N] [DATA_FILE]``
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent
#: The plan's own bar, per package.
FLOOR = 85.0


def per_package(data_file: Path) -> dict[str, tuple[int, int]]:
    """(statements, missed) per package, for files under proto/ and relay/."""
    cov = coverage.Coverage(data_file=str(data_file))
    cov.load()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name in cov.get_data().measured_files():
        path = Path(name).resolve()
        try:
            relative = path.relative_to(ROOT)
        except ValueError:
            continue
        # Only Python modules: Jinja templates run as code compiled under their own name.
        if relative.parts[0] not in ("proto", "relay") or relative.suffix != ".py":
            continue
        _, statements, _, missing, _ = cov.analysis2(str(path))
        package = ".".join(relative.parent.parts)
        totals[package][0] += len(statements)
        totals[package][1] += len(missing)
    return {package: (s, m) for package, (s, m) in sorted(totals.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data_file", nargs="?", default=str(ROOT / ".coverage"))
    parser.add_argument("--floor", type=float, default=FLOOR)
    args = parser.parse_args()
    if not Path(args.data_file).exists():
        print(f"no coverage data at {args.data_file}: run pytest with --cov first", file=sys.stderr)
        return 2
    below = []
    all_statements = all_missed = 0
    print(f"{'package':<26} {'statements':>10} {'missed':>7} {'covered':>8}")
    for package, (statements, missed) in per_package(Path(args.data_file)).items():
        percent = 100.0 * (statements - missed) / statements if statements else 100.0
        flag = "  < floor" if percent < args.floor else ""
        print(f"{package:<26} {statements:>10} {missed:>7} {percent:>7.1f}%{flag}")
        all_statements += statements
        all_missed += missed
        if percent < args.floor:
            below.append(f"{package} ({percent:.1f}%)")
    total = 100.0 * (all_statements - all_missed) / all_statements if all_statements else 100.0
    print(f"{'total':<26} {all_statements:>10} {all_missed:>7} {total:>7.1f}%", flush=True)
    if below:
        print(f"below the {args.floor:g}% floor: {', '.join(below)}; "
              "`coverage report -m --include='<package path>/*'` lists the missed lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
