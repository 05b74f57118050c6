"""The docs stay true: the tutorial's code is the example's code, the reference is current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```(?:python|toml)\n# file: (\S+)\n(.*?)```", re.S)


def test_tutorial_code_blocks_appear_verbatim_in_the_example() -> None:
    text = (ROOT / "docs" / "writing-a-backend.md").read_text()
    blocks = BLOCK.findall(text)
    assert len(blocks) >= 7
    for path, code in blocks:
        source = (ROOT / path).read_text()
        assert code in source, f"the tutorial's block for {path} is not in the file"


def test_generated_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_docs_are_written_for_users() -> None:
    banned = (
        "design card",
        "brief ",
        "shared/reference",
        "fact sheet",
        "--sysfs-root",
        "--driver-name",
        "--debug-hold-after",
        "--host-netns",
        "--procfs-root",
    )
    found = []
    for path in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]:
        text = path.read_text()
        found += [f"{path.name}: {word!r}" for word in banned if word in text]
    assert found == []
