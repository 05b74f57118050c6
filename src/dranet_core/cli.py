"""The ``dranet`` command line (placeholder until the driver lands)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dranet`` console script."""
    parser = argparse.ArgumentParser(prog="dranet", description="Kubernetes network DRA driver (dra.net)")
    parser.parse_args(argv)
    return 0
