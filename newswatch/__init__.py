"""newswatch: news feeds in, topic alerts out.

This package holds what every stage shares: errors, strict YAML loading,
the record schemas on Kafka, settings, the local broker and the CLI.
"""

__version__ = "0.1.0"
