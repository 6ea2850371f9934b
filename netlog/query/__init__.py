"""Choosing records from the store: ``netlog tail``'s filters, later the history search."""
