"""The plugins: one module each, registered by name in `pipelines.engine.registry`."""
