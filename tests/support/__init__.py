"""Helpers shared by the tests: waiting on conditions, and small Kafka conveniences."""
