"""The gevent edges of netlog: listeners, connection handlers and the runner.

Nothing here parses a frame: handlers read bytes, feed them to the sans-IO
decoders of :mod:`netlog`, and hand the records to the sinks.
"""
