"""Intake: every original enters through `upload.store_original` (or `store_stream` for a request body),
whatever brought it: ingest, field upload, portal, camera segment."""
