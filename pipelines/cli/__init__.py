"""The `pipelines` command: thin click commands that parse options and call the engine (main.py),
`check` (check.py, the checks themselves in pipelines/check/), the operators' `jobs` and `api`
commands over the HTTP API (jobs.py; the HTTP client and SigV4 signing options in api_client.py,
how `watch` shows and follows a job in watch.py), and the option types (types.py).
`pipelines dev ...` lives with the local stack, in pipelines/devstack/cli.py."""
