"""The coverage dashboard: the headline figure, per province, failing rooms with reasons, 30-day trend."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from web import i18n
from web.auth import ALL_ROLES, require_roles
from web.chart import trend_svg
from web.context import db_session, lang, now_us, state
from web.evidence import bulk_compute, current_coverage, trend

bp = Blueprint("coverage", __name__)


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
    return render_template("dashboard.html", cov=cov, trend=tr, chart=chart, now_us=t,
                           failing=cov.failing[:500], failing_total=len(cov.failing))
