"""proto imports nothing but the standard library and attrs."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("trio", "asyncio", "relay", "anyio", "outcome", "sniffio", "cattrs", "hypothesis")


def test_proto_imports_only_stdlib_and_attrs() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import proto; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    roots = {name.split(".")[0] for name in loaded}
    assert not roots & set(FORBIDDEN), sorted(roots & set(FORBIDDEN))
    third_party = {r for r in roots if r not in sys.stdlib_module_names and not r.startswith("_")}
    assert third_party <= {"proto", "attrs", "attr"}, third_party
