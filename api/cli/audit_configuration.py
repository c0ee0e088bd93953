"""`wingman audit state`'s table: the configuration an operator reads, out of the whole state."""

from __future__ import annotations


def configuration_rows(cfg: dict | None) -> list[tuple[str, str]]:
    """The configuration an operator reads, one (label, value) each; the rest is in --format json."""
    if not cfg:
        return [("configuration", "none")]
    st = cfg.get("settings") or {}
    build, rp = st.get("build") or {}, st.get("restart_policy") or {}
    stop = (cfg.get("process_configuration") or {}).get("stop") or {}

    def limit(value, unit: str) -> str:
        return "unlimited" if not value else f"{value} {unit}"

    rows = [("name", (st.get("meta") or {}).get("name") or "-"), ("runtime", st.get("runtime") or "-")]
    image = (st.get("container") or {}).get("image")
    if image:
        rows.append(("image", image))
    limits = (
        f"memory {limit(build.get('memory_limit'), 'MiB')}, cpu {limit(build.get('cpu_limit'), '%')}, "
        f"disk {limit(build.get('disk_space'), 'MiB')}"
    )
    rows += [("command", st.get("invocation") or "-"), ("limits", limits)]
    alloc = st.get("allocations") or {}
    default = alloc.get("default") or {}
    if default:
        rows.append(("allocation", f"{default.get('ip')}:{default.get('port')}"))
    if stop:
        rows.append(("stop with", f"{stop.get('type')} {stop.get('value') or ''}".strip()))
    if rp:
        rows.append(("restart policy", f"{rp.get('policy')}, at most {rp.get('max_restarts')} in {rp.get('window')} s"))
    return rows
