"""Kafka helpers shared by the Kafka plugins and the tests."""
