"""`python -m shared.bench ...`: the `baton bench` command without the entry point."""

from shared.bench.cli import bench

bench(prog_name="baton bench")
