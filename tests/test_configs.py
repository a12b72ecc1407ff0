"""The shipped configs load, and the defaults written in default.yaml are the real defaults."""
from __future__ import annotations

from pathlib import Path

import yaml

from flows.settings import CONFIG_DIR, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_configs_validate():
    for p in sorted(CONFIG_DIR.glob("*.yaml")):
        load_settings(p)


def test_default_yaml_is_the_builtin_default():
    assert load_settings(CONFIG_DIR / "default.yaml") == Settings()


def test_prefect_yaml_schedule_matches_the_config():
    s = load_settings(CONFIG_DIR / "default.yaml")
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    nightly = next(d for d in doc["deployments"] if d["name"] == "nightly")
    (sched,) = nightly["schedules"]
    assert (sched["cron"], sched["timezone"]) == (s.schedule.cron, s.schedule.timezone)
    for d in doc["deployments"]:
        module, fn = d["entrypoint"].split(":")
        assert (ROOT / module).is_file()
        src = (ROOT / module).read_text()
        assert f"def {fn}(" in src
