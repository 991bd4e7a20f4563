"""The test kit's reading of the commands a Markdown file prints (tests/kit/usershell.py)."""

from __future__ import annotations

from tests.kit.usershell import shell_commands

MARKDOWN = """# Title

```sh
top-level command
```

## First

Some text with `inline code`.

```sh
# a comment line
one --flag   # a trailing comment stays: bash drops it
A=b \\
  two --continued

three
```

```
not a shell block
```

## Second (with parentheses)

```sh
four
```
"""


def test_commands_by_section_with_continuations_joined() -> None:
    assert shell_commands(MARKDOWN) == {
        "": ["top-level command"],
        "First": [
            "one --flag   # a trailing comment stays: bash drops it",
            "A=b \\\n  two --continued",
            "three",
        ],
        "Second (with parentheses)": ["four"],
    }
