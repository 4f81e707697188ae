"""Helpers shared by the test modules: generated data and a tiny BERT (``data``), running the job and
checking its outcome (``jobs``), the image laid out from the Dockerfile (``image``). Fixtures are in
``tests/conftest.py``; test modules import from here, never from each other."""
