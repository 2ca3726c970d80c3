"""Versions of the SDK and of the contract between its C glue and this runtime.

Several Python plugins in one Falco share one interpreter, hence one imported
``falco_plugin``: the first plugin's. A later plugin's compiled glue then
calls that runtime, so the glue checks :data:`GLUE_CONTRACT` before anything
else. Bump it whenever the glue and the runtime stop understanding each other:
a renamed or re-typed runtime entry point, a changed ``Event`` slot layout, a
changed ``fp_event_ref``. Keep this module's names stable forever: they are
how glue of any version asks.
"""

SDK_VERSION = "0.1.0"
"""The SDK release (the only place it is written; the distribution reads it)."""
GLUE_CONTRACT = 4
"""The glue/runtime contract this runtime implements (2: the ``Event.tid`` slot, and the
state tables, parsing and capture listening entry points; 3: the ``Event._key``/``_value``
slots of ``@per_event``, ``event._per_event_factory``, and the event number in
``fp_event_ref`` instead of an ``Event.num`` slot; 4: the SDK's metric rows after the plugin's in
``metrics_attach``, ``async_refused`` and ``async_pacing`` on async states)."""
