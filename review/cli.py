"""``lran-review``: the commands of the review workbench.

    lran-review region ...    map (and score) an image region with a model set

Each subcommand prints one-line errors and exits 2 for input it refuses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from review import region

COMMANDS: dict[str, tuple[Callable[[Sequence[str] | None], int], str]] = {
    "region": (region.main, "map (and score) an image region with a model set"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches to a subcommand; gives its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: lran-review COMMAND [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if args and args[0] in ("-h", "--help") else 2
    run, _ = COMMANDS[args[0]]
    return run(args[1:])


if __name__ == "__main__":
    sys.exit(main())
