"""Build and write the shipped default heads: ``python -m models.heads.build_default [--out DIR]``.

Writes ``default.thead`` (~50k Gaussians, float32, exact) and ``default_high.thead`` (~200k,
float16 attributes, to stay well under 20 MB) into resources/heads/. Both are deterministic
builds of :func:`models.heads.procedural.build_default_head` with seed 0, so they can always be
regenerated; ``load_builtin_head`` rebuilds a missing one from the seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.heads.asset import BUILTIN_HEADS, builtin_head_path, save_head
from models.heads.procedural import build_default_head

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Build the built-in heads and write them; returns an exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="folder (default: resources/heads)")
    ap.add_argument("--only", choices=sorted(BUILTIN_HEADS), default=None)
    args = ap.parse_args(argv)
    for name, (filename, detail) in BUILTIN_HEADS.items():
        if args.only and name != args.only:
            continue
        t0 = time.perf_counter()
        head = build_default_head(detail, seed=0)
        path = (args.out / filename) if args.out else builtin_head_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_head(head, path, precision="float32" if detail == "default" else "float16")
        size = path.stat().st_size / 1e6
        dt = time.perf_counter() - t0
        print(f"{name}: {len(head)} Gaussians -> {path} ({size:.1f} MB, {dt:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
