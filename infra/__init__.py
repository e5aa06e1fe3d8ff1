"""Thin shared I/O plumbing (broker, database, logging, ops endpoint). Imports no role."""
