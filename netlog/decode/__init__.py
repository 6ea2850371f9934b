"""Bytes in, records out: every decoder netlog has, with no I/O in any of them.

A transport (a TCP stream, a UDP datagram, an HTTP body) is cut into frames
(length-prefixed pickles, lines, whole datagrams); a format turns one frame
into a :class:`netlog.record.Record` (pickled ``LogRecord``, JSON object,
syslog, text).  Decoders raise only :class:`netlog.errors.DecodeError` on bad
input.  ARCHITECTURE.md "Decoding" has the picture.
"""
