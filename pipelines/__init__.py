"""audience pipelines: an Embulk-style engine moving audiences between S3 and Kafka."""

__version__ = "0.1.0"
