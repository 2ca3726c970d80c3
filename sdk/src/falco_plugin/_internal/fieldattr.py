"""Where :func:`falco_plugin.field` records a declaration (read by ``_internal.fields``)."""

FIELD_ATTR = "__falco_field__"
PROPERTIES = ("hidden", "info", "conversation")
