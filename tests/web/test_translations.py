"""Translations (R22): the web's Vietnamese catalogue is a gettext .po that covers every message id the code and
templates name, no old dict catalogue is left, and no page shown in Vietnamese contains an untranslated message
id (every page a role can open, walked with real recorded sessions)."""

from __future__ import annotations

import gettext
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from evidence import catalogue
from tests.plugins.pages import untranslated, visible_text
from tests.web.conftest import SessionsWorld, beat, login
from web import i18n

ROOT = Path(__file__).resolve().parents[2]
WEB_PO = i18n.TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po"
ROLES = ("investigator", "prosecutor", "it_staff", "auditor", "admin")
SKIP = ("/api/", "/static/", "/metrics", "/logout", "/lang")


def pages_of(app: Flask, session_id: str) -> list[str]:
    """Every GET page with no parameter, and those of one recorded session."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.rule.startswith(SKIP):
            continue
        if not rule.arguments:
            urls.append(rule.rule)
        elif rule.arguments == {"session_id"} and not rule.rule.endswith((".pdf", ".m3u8", ".json")):
            urls.append(rule.rule.replace("<session_id>", session_id))
    return sorted(set(urls))


def walk(client: FlaskClient, urls: list[str], data: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Each HTML page that opens: the English message ids its Vietnamese text still shows (`data`: words that
    are the test's data there, such as user names the same as a role)."""
    found: dict[str, list[str]] = {}
    for url in urls:
        resp = client.get(url)
        if resp.status_code != 200 or resp.mimetype != "text/html":
            continue
        page = resp.get_data(as_text=True)
        assert '<html lang="vi"' in page, url
        found[url] = [i for i in untranslated(visible_text(page), WEB_PO) if i not in data]
    return found


@pytest.mark.slow
def test_no_page_in_vietnamese_shows_an_untranslated_message_id(sessions_world: SessionsWorld, app: Flask) -> None:
    world = sessions_world.world
    i18n.MISSES.seen.clear()
    # A failing room and a silent station, so that the dashboard and the alerts show translated reasons.
    st = world.enroll("HN-TTG", "P01")
    beat(world.client, st, world.now(), probes=[
        {"check": "camera.black", "device": "wide", "ok": False, "reason": "the picture is black"},
        {"check": "mic.silent", "device": "room", "ok": False, "reason": "level -70.0 dBFS, below -60: silent"}])
    world.now.advance(600)
    urls = pages_of(app, sessions_world.session_id)
    anonymous = app.test_client()
    opened = walk(anonymous, ["/login", "/no-such-page"])
    resp = anonymous.post("/login", data={"username": "nobody", "password": "wrong"})
    opened["/login (refused)"] = untranslated(visible_text(resp.get_data(as_text=True)), WEB_PO)
    for role in ROLES:
        client = app.test_client()
        assert login(client, role.replace("_", "-")) == 302
        # The users are named after their roles ("investigator" is a user name here, not the role's word).
        for url, ids in walk(client, urls, frozenset(r.replace("_", "-") for r in ROLES)).items():
            opened[f"{url} ({role})"] = ids
    assert len(opened) > 20, sorted(opened)  # the walk reached the pages, it did not bounce off the login
    for must in ("/ (admin)", f"/sessions/{sessions_world.session_id} (prosecutor)", "/admin/users (admin)",
                 "/admin/alerts (it_staff)", "/retention/policies (admin)"):
        assert must in opened, (must, sorted(opened))
    left = {url: ids for url, ids in opened.items() if ids}
    assert left == {}, left
    assert i18n.MISSES.seen == set(), sorted(i18n.MISSES.seen)


def test_translate_keeps_its_call_api() -> None:
    """translate(message, lang, **params) as the pages and other modules call it: English ids, codes, params."""
    assert i18n.translate("Log in", "vi") == "Đăng nhập"
    assert i18n.translate("Log in", "en") == "Log in"
    assert i18n.translate("silent", "vi", station="st-1", minutes=3) == "trạm st-1 mất liên lạc 3 phút"
    assert i18n.translate("silent", "en", station="st-1", minutes=3) == "station st-1 silent for 3 min"
    assert i18n.translate("detention_centre", "vi") == "Trại tạm giam"
    assert i18n.is_translated("Log in") and not i18n.is_translated("a text nobody wrote")
    i18n.MISSES.seen.clear()
    assert i18n.translate("a text nobody wrote", "vi") == "a text nobody wrote"
    assert i18n.MISSES.seen == {"a text nobody wrote"}
    i18n.MISSES.seen.clear()


def test_flask_babel_speaks_the_pages_language(app: Flask) -> None:
    """Flask-Babel is wired to the same catalogue and the page's language: its gettext and Jinja's i18n work."""
    import flask_babel
    from flask import render_template_string, session

    with app.test_request_context("/"):
        session["lang"] = "vi"
        assert flask_babel.gettext("Log in") == "Đăng nhập"
        shown = render_template_string("{% trans %}Log out{% endtrans %}|{{ _('Username') }}")
        assert shown == "Đăng xuất|Tên đăng nhập"
    with app.test_request_context("/"):
        session["lang"] = "en"
        assert flask_babel.gettext("Log in") == "Log in"


def test_the_catalogues_are_complete_and_no_dict_is_left() -> None:
    """`scripts/i18n check`: the code's ids are all in the .po files, each translated and not fuzzy; no VI dict."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "i18n"), "check"], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_new_string_without_translation_fails_the_check(tmp_path: Path) -> None:
    """A copy of the tree with one new template string and an old-style dict: the check names both, then
    `absorb-dict` moves the dict into the .po, deletes it, and the check passes."""
    tree = tmp_path / "tree"
    for part in ("web", "recorder", "evidence", "scripts", "storage", "verifier"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "babel.cfg", tree / "babel.cfg")
    template = tree / "web" / "templates" / "error.html"
    template.write_text(template.read_text(encoding="utf-8") + '\n<p>{{ _("A sentence nobody translated") }}</p>\n',
                        encoding="utf-8")
    i18n_py = tree / "web" / "i18n.py"
    i18n_py.write_text(i18n_py.read_text(encoding="utf-8") + '\n\n# Added on a branch.\nVI: dict[str, str] = {}\n'
                       'VI.update({\n    "A sentence nobody translated": "Một câu chưa ai dịch",\n'
                       '    "a_computed_state": "một trạng thái",\n})\n', encoding="utf-8")
    script = [sys.executable, str(tree / "scripts" / "i18n")]
    check = subprocess.run([*script, "check"], capture_output=True, text=True, timeout=300, check=False)
    assert check.returncode == 1
    assert "still builds the dict VI" in check.stderr
    assert "'A sentence nobody translated' is not in the catalogue" in check.stderr
    absorb = subprocess.run([*script, "absorb-dict"], capture_output=True, text=True, timeout=300, check=False)
    assert absorb.returncode == 0, absorb.stdout + absorb.stderr
    source = i18n_py.read_text(encoding="utf-8")
    assert "VI.update" not in source and "VI: dict" not in source and "# Added on a branch." not in source
    assert "N_('a_computed_state')" in (tree / "web" / "vocabulary.py").read_text(encoding="utf-8")
    check = subprocess.run([*script, "check"], capture_output=True, text=True, timeout=300, check=False)
    assert check.returncode == 0, check.stderr
    po = tree / "web" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
    compiled = gettext.GNUTranslations(io.BytesIO(catalogue.compile_po(po)))
    assert po.with_suffix(".mo").exists()
    assert compiled.gettext("A sentence nobody translated") == "Một câu chưa ai dịch"
    assert compiled.gettext("a_computed_state") == "một trạng thái"


def test_absorb_from_a_merged_branch_takes_only_what_the_branch_added(tmp_path: Path) -> None:
    """A merge whose conflict in web/i18n.py was resolved by keeping this side: `absorb-dict --from BRANCH` reads
    the entries the branch added or changed in its dict since the merge base, and nothing else."""
    tree = tmp_path / "tree"
    for part in ("web", "recorder", "evidence", "scripts", "storage", "verifier"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "babel.cfg", tree / "babel.cfg")
    i18n_py = tree / "web" / "i18n.py"
    ours = i18n_py.read_text(encoding="utf-8")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@example.vn", "-c", "user.name=t", *args], cwd=tree, check=True,
                       capture_output=True, timeout=60)

    git("init", "-q", "-b", "main")
    i18n_py.write_text(ours + '\nVI: dict[str, str] = {\n    "Log in": "Vào hệ thống",\n}\n', encoding="utf-8")
    git("add", "-A")
    git("commit", "-qm", "base: the old dict")
    git("checkout", "-qb", "branch")
    i18n_py.write_text(ours + '\nVI: dict[str, str] = {\n    "Log in": "Vào hệ thống",\n'
                       '    "A sentence from the branch": "Một câu của nhánh",\n}\n', encoding="utf-8")
    git("commit", "-qam", "branch: one more entry")
    git("checkout", "-q", "main")
    i18n_py.write_text(ours, encoding="utf-8")
    git("commit", "-qam", "main: gettext")
    proc = subprocess.run([sys.executable, str(tree / "scripts" / "i18n"), "absorb-dict", "--from", "branch"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "branch added or changed 1 entries of VI" in proc.stdout
    po = tree / "web" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
    compiled = gettext.GNUTranslations(io.BytesIO(catalogue.compile_po(po)))
    assert compiled.gettext("A sentence from the branch") == "Một câu của nhánh"
    assert compiled.gettext("Log in") == "Đăng nhập"  # the base's old text is not the branch's change
