"""The job's steps, shared by the real run (``pytorch_training.py``) and the dry run (``job.dry_run``)."""
