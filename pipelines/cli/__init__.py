"""The `pipelines` command: thin click commands that parse options and call the engine (main.py),
the operators' `jobs` and `api` commands over the HTTP API (jobs.py), and the option types (types.py).
`pipelines dev ...` lives with the local stack, in pipelines/devstack/cli.py."""
