"""Write the claim-configuration JSON Schema to docs/config-schema.json (``--check``: verify only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dranet_core.config.schema import config_json_schema

TARGET = Path(__file__).resolve().parent.parent / "docs" / "config-schema.json"


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run scripts/gen_config_schema.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
