"""The docs stay true: the tutorial's code is the example's code, the reference is current."""

from __future__ import annotations

import argparse
import re
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


def test_generated_reference_covers_every_flag_and_option() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_config_reference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from dranet_core.backends import BUILTIN_ORDER, available_backends, declared_options
    from dranet_core.cli import build_parser

    text = gen_config_reference.generate()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("run", "inventory", "demo"):
        for action in sub.choices[command]._actions:
            if action.help != argparse.SUPPRESS and action.dest != "help":
                assert all(f"`{o}`" in text for o in action.option_strings), action.option_strings
            else:
                assert not any(f"`{o}`" in text for o in action.option_strings), action.option_strings
    for name in BUILTIN_ORDER:
        for option in declared_options(available_backends()[name].load()):
            assert f"`{option.name}`" in text


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
