"""The one error tree of netlog's decoders.

Decoders raise only :class:`DecodeError` (or a subclass) on bad input, so a
server can catch exactly that, count it, and drop the frame or connection
without ever catching a bug by accident.
"""


class DecodeError(Exception):
    """Bad input that makes the rest of a stream undecodable.

    ``reason`` is a short, stable, machine-friendly word (``frame_too_large``,
    ``bad_frame`` ...) used as a counter label; the message is for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
