"""Host resource pressure as Falco async events (see plugins/metrics/README.md)."""
