"""The engine: a config (templating, settings, the plugin registry) becomes a plan of shards; a shard
is read (read.py: input, parser, filters) and run (run.py: into the output, committed or aborted,
with its report); finish writes end markers or the manifest. Plugins depend on the engine, never the
reverse: the engine finds them and their traits through the registry."""
