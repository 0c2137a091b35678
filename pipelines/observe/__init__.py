"""What an operator sees of a job without an agent beside it:

- metrics.py: CloudWatch Embedded Metric Format lines on stdout at each shard's and each job's end
  (Lambda and the ECS awslogs driver deliver stdout to CloudWatch Logs, which makes them metrics);
- lineage.py: OpenLineage run events (START, then COMPLETE or FAIL) sent to $OPENLINEAGE_URL;
- datasets.py: a job's inputs and outputs named by OpenLineage's naming spec;
- job_events.py: the calls the entry points (the CLI, the Lambda's tasks) make at those moments.

Neither ever fails a job: an event that cannot be sent is logged on stderr and the job goes on.
"""
