"""The IT desk's pages without a browser: the sampled heartbeat history, the charts, the room and station pages,
the drill-down, and the admin forms' inline errors (web/health.py, web/chart.py, web/rooms.py, web/admin.py)."""

from __future__ import annotations

import json
import random
import re

from flask.testing import FlaskClient

from tests.web.conftest import World, beat, csrf_token, login
from web.chart import Series, line_chart, nice_range
from web.db import Database
from web.health import beat_of, history, sample_ids
from web.models import Heartbeat, Station

PROBES = [{"check": "camera.black", "device": "wide", "ok": True, "reason": "luma 118", "value": "118.5"},
          {"check": "mic.silent", "device": "room", "ok": True, "reason": "-23 dBFS", "value": -23}]


def test_sample_ids_take_the_first_heartbeat_of_every_slice(world: World, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    rng = random.Random(5)
    start = world.now() - 86_400_000_000
    times = sorted({start + rng.randrange(0, 86_400_000_000) for _ in range(900)})
    with db.session() as s:
        pk = s.query(Station.id).filter(Station.station_id == st.station_id).scalar()
        s.add_all([Heartbeat(station_pk=pk, received_us=t, sent_us=t, ok=True, reasons="[]", body="{}")
                   for t in times])
        s.commit()
        rows = dict(s.query(Heartbeat.id, Heartbeat.sent_us).filter(Heartbeat.station_pk == pk).all())
        got = sample_ids(s, pk, start, world.now(), samples=48)
    width = 86_400_000_000 // 48
    want = []
    for i in range(48):  # brute force: the earliest heartbeat in each slice that has one
        inside = [t for t in times if start + i * width <= t < start + (i + 1) * width]
        if inside:
            want.append(min(inside))
    assert [rows[i] for i in got] == want
    assert 40 < len(got) <= 48


def test_beat_of_reads_the_probe_values_and_survives_a_strange_body() -> None:
    body = json.dumps({"probes": PROBES + [{"check": "camera.black", "device": "close", "value": "n/a"}, 7],
                       "versions": {"agent": "0.2.0"}, "selftest": {"at_us": 5, "ok": False}})
    b = beat_of("st-1", 10, 11, False, '[{"code": "disk_low", "free_gib": "3.0", "min_gib": "5.0"}]', 3 * 2**30, 12,
                body)
    assert b.values == {"picture": {"wide": 118.5}, "sound": {"room": -23.0}}
    assert b.versions == {"agent": "0.2.0"} and b.selftest == (5, False)
    assert [r.code for r in b.reasons] == ["disk_low"]
    for junk in ("", "[1, 2]", '{"probes": "x", "versions": [], "selftest": {"at_us": "soon", "ok": 1}}'):
        j = beat_of("st-1", 10, 11, True, "[]", None, None, junk)
        assert j.values == {} and j.versions == {} and j.selftest is None


def test_line_chart_keeps_the_legend_off_the_lines_and_lifts_the_pen_at_gaps() -> None:
    svg = str(line_chart([Series("wide <cam>", [(0, 1.0), (1, None), (2, 3.0), (3, 4.0)]), Series("close", [])],
                         title="Hình ảnh", x_range=(0, 3), y_range=nice_range([1.0, 3.0, 4.0]), x_ticks=[(0, "a")],
                         y_format=lambda v: f"{v:.0f}"))
    plot, caption = svg.split("</svg>")
    assert "wide &lt;cam&gt;" in caption and "close" in caption  # the legend, escaped, under the plot
    assert "legend" not in plot and "<text" in plot
    path = re.search(r'<path d="([^"]+)" class="s0"', plot)
    assert path and path.group(1).count("M") == 2 and path.group(1).count("L") == 1  # 2-3 joined, 0 alone
    assert plot.count("<circle") == 1  # the lone point before the gap is drawn as a dot
    assert nice_range([]) == (-0.1, 1.1) and nice_range([5.0]) == (4.0, 6.0)  # never an empty range
    assert nice_range([0.0, 2.0], floor=0) == (0, 2.2)


def test_room_and_station_pages_show_history_and_refuse_a_bad_range(world: World, client: FlaskClient,
                                                                     db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    tested = world.now() - 3600_000_000
    for _ in range(5):
        assert beat(world.client, st, world.now(), probes=PROBES, selftest={"at_us": tested, "ok": True})[0] == 201
        world.now.advance(60)
    with db.session() as s:
        pk = s.query(Station.id).filter(Station.station_id == st.station_id).scalar()
        h = history(s, [(pk, st.station_id)], world.now() - 86_400_000_000, world.now())
    assert len(h.latest) == 5 and h.latest[0].sent_us > h.latest[-1].sent_us
    assert h.samples and all(b.values["picture"] == {"wide": 118.5} for b in h.samples)
    assert len(h.selftests) == 1 and h.selftests[0][1] is True

    world.user("ky.thuat", "it_staff")
    assert login(client, "ky.thuat") == 302
    page = client.get("/coverage/sites/HN-TTG/rooms/P01").get_data(as_text=True)
    assert "đang hoạt động" in page and st.station_id in page and "wide: 118.5" in page and "agent 0.1.0" in page
    assert page.count("<figure") == 5  # the uptime bars and the four probe charts
    assert client.get("/coverage/sites/HN-TTG/rooms/P01?days=1").status_code == 200
    bad = client.get("/coverage/sites/HN-TTG/rooms/P01?days=2")
    assert bad.status_code == 400 and "days: &#39;2&#39; is not one of 1, 7, 30" in bad.get_data(as_text=True)
    assert client.get("/coverage/sites/HN-TTG/rooms/P99").status_code == 404
    station = client.get(f"/coverage/stations/{st.station_id}").get_data(as_text=True)
    assert "agent 0.1.0" in station and "HN-TTG/P01" in station
    site = client.get("/coverage/sites/HN-TTG").get_data(as_text=True)
    assert 'data-room="P01" class="band-ok"' in site and 'data-room="P02" class="band-bad"' in site
    province = client.get("/coverage/provinces/HNI").get_data(as_text=True)
    assert 'data-site="HN-TTG"' in province and 'data-site="HUE-NTG"' not in province
    failing = client.get("/coverage/failing").get_data(as_text=True)
    assert 'data-room="P02"' in failing and 'data-site="HN-TTG" data-room="P01"' not in failing
    stations = client.get("/admin/stations").get_data(as_text=True)
    assert re.search(rf'data-station="{st.station_id}">.*?class="health ok">bình thường<', stations, re.S)


def test_admin_form_errors_are_inline_translated_and_keep_the_input(world: World, client: FlaskClient) -> None:
    world.user("quan.tri", "admin")
    assert login(client, "quan.tri") == 302
    form = {"code": "HUE VKS", "name": "Viện kiểm sát Huế", "province": "HUE", "facility_type": "procuracy",
            "csrf_token": csrf_token(client, "/admin/sites")}
    resp = client.post("/admin/sites", data=form)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "Chỉ dùng chữ cái, chữ số" in body and 'value="HUE VKS"' in body and 'value="Viện kiểm sát Huế"' in body
    assert '<option value="HUE" selected>' in body and '<option value="procuracy" selected>' in body
    resp = client.post("/admin/sites", data={**form, "code": "HN-TTG"})
    assert resp.status_code == 400 and "Đã có cơ sở với mã này." in resp.get_data(as_text=True)
    resp = client.post("/admin/sites", data={**form, "code": "HUE-X", "province": "XXX"})
    assert resp.status_code == 400 and "Hãy chọn một mục trong danh sách." in resp.get_data(as_text=True)
    client.post("/language", data={"language": "en", "csrf_token": form["csrf_token"]})
    resp = client.post("/admin/rooms", data={"site": "HN-TTG", "code": "P01", "name": "",
                                             "csrf_token": form["csrf_token"]})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "This field is required." in body and 'value="P01"' in body
    resp = client.post("/admin/sites", data={**form, "code": "HUE-VKS"})
    assert resp.status_code == 302
    assert "Site HUE-VKS added." in client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Site HUE-VKS added." not in client.get("/admin/sites").get_data(as_text=True)  # said once
    resp = client.post("/admin/codes", data={"site": "HUE-NTG", "room": "P01", "csrf_token": form["csrf_token"]})
    assert resp.status_code == 400 and "This room is not in the chosen site." in resp.get_data(as_text=True)


def test_units_and_users_forms_answer_inline(world: World, client: FlaskClient) -> None:
    world.user("quan.tri", "admin")
    world.unit("VKS-HNI")
    assert login(client, "quan.tri") == 302
    token = csrf_token(client, "/admin/units")
    resp = client.post("/admin/units", data={"code": "VKS-HNI", "name": "Lần hai", "kind": "province",
                                             "parent": "VN", "csrf_token": token})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 409  # the refusal keeps its status, beside the form, in the page's language
    assert "Yêu cầu trùng hoặc xung đột với dữ liệu đã có." in body and "unit VKS-HNI already exists" in body
    assert 'value="Lần hai"' in body and "<details open>" in body
    resp = client.post("/admin/units", data={"code": "VKS-X", "name": "X", "kind": "planet", "csrf_token": token})
    assert resp.status_code == 400 and "Hãy chọn một mục trong danh sách." in resp.get_data(as_text=True)
    resp = client.post("/admin/units/place", data={"site": "HN-TTG", "room": "P09", "unit": "VKS-HNI",
                                                   "csrf_token": token})
    assert resp.status_code == 404 and "Không tìm thấy." in resp.get_data(as_text=True)
    resp = client.post("/admin/units/place", data={"site": "HN-TTG", "room": "P01", "unit": "VKS-HNI",
                                                   "csrf_token": token})
    assert resp.status_code == 302 and "Đã lưu." in client.get("/admin/units").get_data(as_text=True)
    resp = client.post("/admin/users", data={"username": "", "display_name": "Không tên", "role": "auditor",
                                             "csrf_token": token})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "Trường này là bắt buộc." in body and 'value="Không tên"' in body
    assert '<option value="auditor" selected>' in body
