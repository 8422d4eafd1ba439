"""The processor stage: reads articles from Kafka, detects watched topics, groups near-duplicate
stories and writes Match records (faust-streaming worker, `newswatch process`)."""
