"""``python -m servers`` is ``netlog serve``."""

import sys

from netlog.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
