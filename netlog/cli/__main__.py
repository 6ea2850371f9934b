"""``python -m netlog.cli``: the same as the ``netlog`` command."""

from netlog.cli.main import run

run()
