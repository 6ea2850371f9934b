"""Shipping stored records onward (NATS JetStream, syslog collectors) and collecting them centrally.

The JSONL store is the write-ahead log: a forwarder reads it from a
persisted position and hands batches of stored lines to a
:class:`~netlog.forward.destination.Destination`.
"""
