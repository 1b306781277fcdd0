"""Prefect flows: the procedures an examiner would describe, step by step."""
