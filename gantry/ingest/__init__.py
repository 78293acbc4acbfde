"""Ingest: scan folders, read DICOM headers, commit Parquet batches."""
