"""Export: evidence bundles (BagIt in zip), their report and their offline verification."""
