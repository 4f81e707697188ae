"""The SageMaker endpoint (``serve``): an HTTP server that answers ``/ping`` and ``/invocations`` with
the scoring code of ``inference``, the same the training job's evaluation and the batch scorer use."""
