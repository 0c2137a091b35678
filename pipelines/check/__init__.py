"""`pipelines check CONFIG`: each thing a run of CONFIG needs, checked one by one, like `dbt debug`.

- config_checks: the template renders, the config validates (the other checks need the job);
- storage_checks: the input can be listed and read; the outputs, the work dir and the error output
  can be written (a small probe object written and deleted);
- kafka_checks: the brokers answer and authenticate; the topic exists, with its partition count; a
  transactional output's producer begins and aborts a transaction;
- registry_checks: the schema registry answers; the subject takes the schema (Avro with a registry);
- runner: which checks a job needs, run in order (`run_checks`).

Each check gives a CheckResult (result.py): ok with what it found, or failed with what to do.
"""
