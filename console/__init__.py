"""The analysts' web console (`newswatch console`): its own SQLite store fed from Kafka, pages and a JSON API."""
