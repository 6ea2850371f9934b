"""Bytes in, records out: every decoder netlog has, with no I/O in any of them.

A transport (a TCP stream, a UDP datagram, an HTTP body) is cut into frames
by a framing (:mod:`~netlog.decode.framing`: length-prefixed pickles, lines,
whole datagrams); a format (:mod:`~netlog.decode.formats`) turns one frame
into a :class:`netlog.record.Record` (pickled ``LogRecord``, JSON object,
syslog, text), through the normalisation in :mod:`~netlog.decode.normalize`.
:mod:`~netlog.decode.stream`, :mod:`~netlog.decode.datagram` and
:mod:`~netlog.decode.http` pick one of each per transport.  Decoders raise
only :class:`netlog.errors.DecodeError` on bad input.  ARCHITECTURE.md
"Decoding" has the picture.
"""
