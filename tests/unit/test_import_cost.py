"""What the server process imports at start: nothing heavy that only one command needs."""

import subprocess
import sys


def test_the_command_line_and_the_servers_do_not_import_duckdb():
    # python -m servers imports netlog.cli.main; DuckDB (~16 MiB of RSS) is
    # loaded by `netlog query` and at the viewer's first query, never at start.
    code = "import sys; import netlog.cli.main, servers.runner; print('duckdb' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
