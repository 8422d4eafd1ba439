"""The alerts stage: turns Matches from Kafka into signed, grouped, retried webhook deliveries.

One module per step (subscriptions -> route -> noise -> payload/formats -> signing -> deliver/retry),
each with a pure function at its heart; `dispatcher` wires them to Kafka and HTTP.
"""
