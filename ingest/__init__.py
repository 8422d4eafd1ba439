"""ingest: poll RSS/Atom feeds politely and defensively, publish each new entry to Kafka once.

One module per step: feeds_config (the feeds file), fetch (HTTP with limits), parse (bytes to
Article), ids (stable article ids), schedule (when to poll next), seen (the state file),
publish (Kafka, acks=all), poller (the asyncio loop tying them together), cli (the verbs).
"""
