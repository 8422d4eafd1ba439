"""The local single-node Apache Kafka broker (KRaft) that `newswatch kafka` and the tests run.

`artifacts` fetches the pinned broker jars and verifies their checksums; `local` formats
storage once and starts, probes and stops the broker process.
"""
