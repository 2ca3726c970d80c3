"""The plugin runtime: what a built plugin library runs, besides the author API.

Everything under ``_internal`` ships inside every plugin's site directory, so
nothing here may import the SDK's tooling (builder, hosts, registry). Plugin
authors never import it.
"""

from typing import Any

json_split: Any = None
"""falco_plugin.json_records in C, set by the glue of a library that carries yyjson
(build/glue/json_records.c): ``(document, at tokens, value tokens, json.loads) -> records or
None`` (None: "take the Python path"). Here, in a package every library imports, so that
offering it costs no import; :mod:`falco_plugin.jsonrecords` is imported only when used."""
