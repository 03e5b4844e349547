"""The coverage dashboard, on one screen: the national figure against the 100% target, the 34 provinces as a
coloured, sortable grid leading to each province's sites and rooms (web/rooms.py), the failing rooms counted by
reason with the first few named and a link to the full list, and the 30-day trend."""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from web import i18n
from web.auth import ALL_ROLES, require_roles
from web.chart import trend_svg
from web.context import db_session, lang, now_us, state
from web.evidence import bulk_compute, current_coverage, trend

bp = Blueprint("coverage", __name__)
FAILING_SHOWN = 5
"""Failing rooms named on the dashboard; the rest are counted, and listed on /coverage/failing."""


@bp.route("/")
@require_roles(*ALL_ROLES)
def dashboard() -> ResponseReturnValue:
    cfg = state().config
    s = db_session()
    t = now_us()
    with bulk_compute():
        snap, cov = current_coverage(s, cfg, t)
        tr = trend(s, snap, cfg, t)
    language = lang()
    chart = trend_svg(tr.days, i18n.translate("Trend over 30 days", language),
                      i18n.translate("facilities equipped", language), i18n.translate("room uptime", language))
    failing = [r for r in cov.rooms if not r.working]
    kinds = Counter(r.reasons[0].code for r in failing if r.reasons)
    return render_template("dashboard.html", cov=cov, trend=tr, chart=chart, now_us=t,
                           failing=failing[:FAILING_SHOWN], failing_total=len(failing),
                           failing_kinds=kinds.most_common(), kind_label=i18n.REASON_KINDS)
