"""Shared, I/O-free contracts: ids, broker names, message models, geometry, the batch container.

Every role may import this package; it imports no role.
"""
