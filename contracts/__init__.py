"""The script contract: fixed locations under /opt/ml, environment switches, user-facing errors and the failure file."""
