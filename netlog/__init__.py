"""netlog: a network log sink and multi-protocol test server.

This package holds everything about log records and nothing about sockets:
decoders (bytes in, records out), the record model, sinks, client helpers
and the command line.  The gevent side lives in the sibling package
``servers``.
"""

__version__ = "0.1.0"
