"""The JSONL store: records.jsonl and its rotations, one writer, read by tail and queries."""
