"""Operations: the embedded stack, the Prefect server and scale-out helpers."""
