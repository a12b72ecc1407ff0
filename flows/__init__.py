"""Prefect flows, deployments, the CLI and the demo: wiring over warehouse/, features/ and heads/."""
