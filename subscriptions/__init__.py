"""Realtime: the event bus, channels, the relay and subscription generators (issue #3)."""
