"""What `deploy --dsn` leaves to a DBA: the server-wide settings of conf/ this server lacks.

deploy --dsn changes nothing server-wide (no ALTER SYSTEM, no files): roles/audit.sql sets what
can be set at database scope. This module compares the server's settings with the conf/
fragments and lists the differences, saying which need a restart (context 'postmaster').
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from hrp_harness.platform.conf import conf_settings, unquote

#: The fragments whose settings a server running the HRP database must have.
SECURITY_FRAGMENTS = ("base", "logging", "audit", "tls")
MEMORY_KB = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}
TIME_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
TRUE = {"on", "true", "yes", "1"}
FALSE = {"off", "false", "no", "0"}


@dataclass(frozen=True)
class Advice:
    name: str
    wanted: str       # as written in conf/
    current: str      # the server's value as this session sees it
    context: str      # pg_settings.context
    source: str       # pg_settings.source ('database' when deploy set it for the database)
    fragment: str

    current_raw: str = ""  # pg_settings.setting (in the base unit)
    unit: str | None = None

    @property
    def satisfied(self) -> bool:
        return matches(self.name, self.wanted, self.current_raw, self.unit)

    @property
    def needs_restart(self) -> bool:
        return self.context == "postmaster"


def _in_base_unit(value: str, unit: str) -> float | None:
    number = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)", value)
    base = re.fullmatch(r"(\d*)([A-Za-z]+)", unit)
    if not number or not base:
        return None
    factor, base_unit = float(base.group(1) or 1), base.group(2)
    table = MEMORY_KB if base_unit in MEMORY_KB else TIME_MS if base_unit in TIME_MS else None
    suffix = number.group(2) or base_unit
    if table is None or suffix not in table:
        return None
    return float(number.group(1)) * table[suffix] / (factor * table[base_unit])


def matches(name: str, wanted: str, setting: str, unit: str | None = None) -> bool:
    want = unquote(wanted)
    if name == "shared_preload_libraries":  # more preloaded libraries are fine
        have = {lib.strip() for lib in setting.split(",") if lib.strip()}
        return {lib.strip() for lib in want.split(",") if lib.strip()} <= have
    if want.lower() in TRUE | FALSE and setting.lower() in TRUE | FALSE:
        return (want.lower() in TRUE) == (setting.lower() in TRUE)
    if unit:
        converted = _in_base_unit(want, unit)
        if converted is not None:
            try:
                return converted == float(setting)
            except ValueError:
                return False
    return want.lower() == setting.lower()


def server_advice(dsn: str) -> list[Advice]:
    wanted = conf_settings(SECURITY_FRAGMENTS)
    with psycopg.connect(dsn) as conn:
        rows = {row[0]: row for row in conn.execute(
            "select name, setting, unit, context, source, current_setting(name)"
            " from pg_settings where name = any(%s)", ([name for _, name, _ in wanted],))}
    advice = []
    for fragment, name, value in wanted:
        if name not in rows:  # e.g. pgaudit.* on a server without pgaudit loaded
            advice.append(Advice(name, value, "(unknown: its library is not loaded)", "postmaster",
                                 "", fragment, current_raw="\0"))
            continue
        _, setting, unit, context, source, current = rows[name]
        advice.append(Advice(name, value, current, context, source, fragment,
                             current_raw=setting, unit=unit))
    return advice


def advice_lines(advice: list[Advice]) -> list[str]:
    todo = [a for a in advice if not a.satisfied]
    if not todo:
        return ["server-wide settings: this server already has every setting of conf/"
                f"{{{','.join(SECURITY_FRAGMENTS)}}}.conf"]
    lines = ["deploy changed nothing server-wide. A DBA must install these settings (conf/<file>, "
             "in postgresql.conf or conf.d/), then restart or reload as marked:"]
    for a in todo:
        need = "RESTART" if a.needs_restart else "reload "
        lines.append(f"  {need}  {a.name} = {a.wanted}    (now: {a.current}; conf/{a.fragment}.conf)")
    lines.append("  reload   pg_hba.conf: hostssl + scram-sha-256 lines for hrp_app, hrp_readonly, "
                 "hrp_backup and 'hostnossl all all 0.0.0.0/0 reject' (conf/pg_hba.conf.template)")
    if any(a.needs_restart for a in todo):
        lines.append("  A restart is needed (shared_preload_libraries and the other RESTART lines); "
                     "after it, run deploy --dsn again to create the pgaudit extension and schedule "
                     "the maintenance jobs (pg_cron).")
    return lines
