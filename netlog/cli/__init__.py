"""The ``netlog`` command line: ``serve``, ``send``, ``probe`` and ``tail``."""
