"""`python -m shared.demo`: the same as `baton demo`."""

from shared.demo.cli import demo

demo(prog_name="baton demo")
