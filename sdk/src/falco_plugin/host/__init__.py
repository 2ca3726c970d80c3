"""A plugin host that behaves like libsinsp (being written)."""
