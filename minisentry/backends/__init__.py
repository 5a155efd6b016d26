"""Backends: channels, stores and caches behind small protocols; plugins register them."""
