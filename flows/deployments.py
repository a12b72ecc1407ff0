"""Deployments built from the config: nightly on its cron schedule, the others on demand.

`vitrine serve` serves them all from one process (Prefect's `serve`); prefect.yaml declares the
same deployments for a Prefect server with a process worker.
"""
from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron

from flows.flows import compact_flow, encode_flow, ingest_flow, nightly, score_flow, train_flow
from flows.settings import Settings


def build_deployments(s: Settings) -> list:
    params = {"settings": s.model_dump(mode="json")}
    nightly_params = {**params, "source": str(s.schedule.source) if s.schedule.source else None}
    return [
        nightly.to_deployment(
            name="nightly",
            schedules=[Cron(s.schedule.cron, timezone=s.schedule.timezone)],
            parameters=nightly_params,
            concurrency_limit=1,
            description="ingest the catalog snapshot, encode what changed, score what has no prediction",
            tags=["vitrine"],
        ),
        ingest_flow.to_deployment(name="manual", parameters=params, tags=["vitrine"]),
        encode_flow.to_deployment(name="manual", parameters=params, tags=["vitrine"]),
        train_flow.to_deployment(name="manual", parameters=params, tags=["vitrine"]),
        score_flow.to_deployment(name="manual", parameters=params, tags=["vitrine"]),
        compact_flow.to_deployment(name="manual", parameters=params, tags=["vitrine"]),
    ]


def serve_all(s: Settings) -> None:
    """Block, serving every deployment; scheduled runs execute in this process."""
    serve(*build_deployments(s))
