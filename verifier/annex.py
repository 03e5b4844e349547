"""The annex to the minutes (R06): a printable PDF, in Vietnamese, that ties the paper record
of an interrogation to its sealed recording.

It shows the case metadata, the room and station, start and end to the minute (Asia/Ho_Chi_Minh),
the duration, every pause and interruption with its times, cause and reason, the investigator's
markers (time and label), the segment count, the SHA-256 of the manifest, and a QR code of the
**seal**: ``IRMS1:<session_id>:<manifest_sha256>``.
Anyone holding the paper can check the seal against the store with ``irms-verify seal``.

`annex_facts` turns a signed header and manifest into the values printed (pure, testable);
`render_annex` lays them out; `build_annex` does both. The manifest hash is taken over the
manifest's canonical bytes exactly as stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from evidence.canonical import parse_json_object
from evidence.errors import FormatError
from evidence.formats import HEADER_FORMAT, MANIFEST_FORMAT, check_document, header_name, manifest_name
from evidence.keys import key_id, unb64
from storage.base import ObjectStore
from storage.errors import ObjectNotFound
from verifier.errors import VerificationError

SEAL_SCHEME = "IRMS1"
SEAL_RE = re.compile(r"^IRMS1:([0-9a-fA-F-]{8,64}):([0-9a-f]{64})$")
TIMEZONE = "Asia/Ho_Chi_Minh"
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/noto"))

CAUSES_VI = {
    "pause": "Tạm dừng",
    "device_lost": "Mất tín hiệu thiết bị",
    "crash": "Phần mềm trạm ghi dừng đột ngột",
    "power": "Mất điện",
    "store_full": "Hết dung lượng lưu trữ",
    "encoder_stall": "Bộ mã hoá ngừng",
}
END_REASONS_VI = {
    "stopped": "Kết thúc bởi điều tra viên",
    "duration_reached": "Hết thời lượng đã định",
    "recovered_after_crash": "Khép lại sau sự cố trạm ghi",
    "device_failure": "Thiết bị hỏng",
}


class SealError(VerificationError):
    """A seal does not match the stored manifest (or names no stored session)."""


@dataclass(frozen=True)
class Seal:
    session_id: str
    manifest_sha256: str

    def text(self) -> str:
        return f"{SEAL_SCHEME}:{self.session_id}:{self.manifest_sha256}"


def manifest_sha256(manifest_bytes: bytes) -> str:
    """SHA-256 of the manifest object's bytes as stored (canonical JSON)."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def parse_seal(text: str) -> Seal:
    """`IRMS1:<session_id>:<manifest_sha256>` -> Seal; FormatError for anything else."""
    m = SEAL_RE.match(text.strip())
    if not m:
        raise FormatError(f"not an IRMS seal (expected {SEAL_SCHEME}:<session id>:<64 hex digits>): {text[:120]!r}")
    return Seal(m.group(1).lower(), m.group(2))


def check_seal(store: ObjectStore, seal: Seal, prefix: str) -> bytes:
    """Return the stored manifest bytes when their hash is the seal's; raise SealError otherwise."""
    try:
        stored = store.get(manifest_name(prefix))
    except ObjectNotFound:
        raise SealError(f"session {seal.session_id} has no manifest in {store.url}: the seal cannot match") from None
    actual = manifest_sha256(stored)
    if actual != seal.manifest_sha256:
        raise SealError(f"seal names manifest {seal.manifest_sha256}, the store's manifest of session "
                        f"{seal.session_id} is {actual}")
    return stored


# --- the facts printed --------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnexInterruption:
    number: int
    cause: str
    start: str
    end: str
    duration: str
    reason: str
    resume_reason: str


@dataclass(frozen=True)
class AnnexMarker:
    time: str
    label: str


@dataclass(frozen=True)
class AnnexFacts:
    session_id: str
    case_number: str
    suspect: str
    interrogators: tuple[str, ...]
    legal_basis: str
    site: str
    room: str
    station_id: str
    station_key_id: str
    started: str
    ended: str
    duration: str
    end_reason: str
    interruptions: tuple[AnnexInterruption, ...]
    markers: tuple[AnnexMarker, ...]
    segment_count: int
    record_count: int | None
    manifest_sha256: str
    chain_head: str
    seal: str


def local_time(us: int, *, seconds: bool = False, tz: str = TIMEZONE) -> str:
    """dd/mm/yyyy HH:MM (24 h) in `tz`, optionally with seconds."""
    when = dt.datetime.fromtimestamp(us / 1e6, tz=ZoneInfo(tz))
    return when.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def utc_offset_label(us: int, tz: str = TIMEZONE) -> str:
    """'(UTC+7)' for Asia/Ho_Chi_Minh."""
    offset = dt.datetime.fromtimestamp(us / 1e6, tz=ZoneInfo(tz)).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"(UTC{sign}{hours}" + (f":{rest:02d}" if rest else "") + ")"


def duration_text(us: int) -> str:
    """'1 giờ 02 phút 05 giây (01:02:05)'."""
    total = max(0, round(us / 1e6))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    words = (f"{h} giờ " if h else "") + f"{m:02d} phút {s:02d} giây"
    return f"{words} ({h:02d}:{m:02d}:{s:02d})"


def annex_facts(header: dict[str, Any], manifest_bytes: bytes, record_count: int | None = None) -> AnnexFacts:
    """The values the annex prints, from the signed header and the stored manifest bytes."""
    check_document(header, HEADER_FORMAT, "session header")
    manifest = check_document(parse_json_object(manifest_bytes, "manifest"), MANIFEST_FORMAT, "manifest")
    if manifest["session_id"] != header["session_id"]:
        raise FormatError("manifest and header name different sessions")
    case = header["case"]
    digest = manifest_sha256(manifest_bytes)
    resumes = [e for e in manifest["events"] if isinstance(e, dict) and e.get("kind") == "resume"]
    rows: list[AnnexInterruption] = []
    pauses = 0
    for n, it in enumerate(manifest["interruptions"], start=1):
        start, end = it.get("start_us"), it.get("end_us")
        cause = str(it.get("cause", ""))
        resume_reason = ""
        if cause == "pause":
            if pauses < len(resumes):
                resume_reason = str(resumes[pauses].get("detail", ""))
            pauses += 1
        rows.append(AnnexInterruption(
            number=n,
            cause=CAUSES_VI.get(cause, cause),
            start=local_time(start, seconds=True) if isinstance(start, int) else "?",
            end=local_time(end, seconds=True) if isinstance(end, int) else "?",
            duration=duration_text(end - start) if isinstance(start, int) and isinstance(end, int) else "?",
            reason=str(it.get("reason", "")),
            resume_reason=resume_reason,
        ))
    started, ended = manifest["started_at_us"], manifest["ended_at_us"]
    return AnnexFacts(
        session_id=header["session_id"],
        case_number=str(case.get("case_number", "")),
        suspect=str(case.get("suspect", "")),
        interrogators=tuple(str(i) for i in case.get("interrogators", [])),
        legal_basis=str(case.get("legal_basis", "")),
        site=header["site"],
        room=header["room"],
        station_id=header["station_id"],
        station_key_id=key_id(unb64(header["station_key"], "station_key")),
        started=f"{local_time(started)} {utc_offset_label(started)}",
        ended=f"{local_time(ended)} {utc_offset_label(ended)}",
        duration=duration_text(ended - started),
        end_reason=END_REASONS_VI.get(manifest["end_reason"], manifest["end_reason"]),
        interruptions=tuple(rows),
        markers=tuple(AnnexMarker(local_time(e["at_us"], seconds=True), str(e.get("detail", "")))
                      for e in manifest["events"] if e.get("kind") == "marker"),
        segment_count=manifest["segment_count"],
        record_count=record_count,
        manifest_sha256=digest,
        chain_head=manifest["chain_head"],
        seal=Seal(header["session_id"], digest).text(),
    )


# --- layout -------------------------------------------------------------------------------------


def _font(name: str) -> Path:
    for d in FONT_DIRS:
        if (d / name).exists():
            return d / name
    raise FormatError(f"font {name} not found in {', '.join(str(d) for d in FONT_DIRS)} "
                      "(install fonts-dejavu-core)")


def qr_png(text: str, scale: int = 8) -> bytes:
    """The QR code of `text` as a PNG (error correction M, quiet zone of 4 modules)."""
    import segno

    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def render_annex(facts: AnnexFacts, *, generated_at_us: int | None = None) -> bytes:
    """Lay the facts out on A4 pages; returns the PDF bytes."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_margins(18, 15, 18)
    pdf.add_font("Sans", "", str(_font("DejaVuSans.ttf")))
    pdf.add_font("Sans", "B", str(_font("DejaVuSans-Bold.ttf")))
    pdf.add_font("Mono", "", str(_font("DejaVuSansMono.ttf")))
    pdf.set_title(f"Phụ lục biên bản - phiên ghi {facts.session_id}")
    pdf.set_creator("IRMS irms-verify annex")
    pdf.add_page()
    width = pdf.epw

    def line(text: str, size: float = 10, style: str = "", align: str = "L", h: float = 5.5) -> None:
        pdf.set_font("Sans", style, size)
        pdf.multi_cell(width, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(label: str, value: str, mono: bool = False) -> None:
        pdf.set_font("Sans", "B", 10)
        pdf.cell(52, 5.5, label, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.set_font("Mono" if mono else "Sans", "", 8.5 if mono else 10)
        pdf.multi_cell(width - 52, 5.5, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def heading(text: str) -> None:
        pdf.ln(2)
        line(text, 11, "B")
        pdf.set_draw_color(120, 120, 120)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1)

    line("CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM", 10, "B", "C")
    line("Độc lập - Tự do - Hạnh phúc", 10, "", "C")
    pdf.ln(3)
    line("PHỤ LỤC BIÊN BẢN", 15, "B", "C", h=7)
    line("Thông tin bản ghi âm, ghi hình có âm thanh buổi hỏi cung", 11, "", "C")
    line("(Điều 183 BLTTHS 2015; Thông tư liên tịch 03/2018)", 9, "", "C")

    qr_size = 42
    top = pdf.get_y() + 3
    pdf.image(io.BytesIO(qr_png(facts.seal)), x=pdf.l_margin + width - qr_size, y=top, w=qr_size, h=qr_size)
    pdf.set_y(top)
    pdf.set_right_margin(18 + qr_size + 4)
    width = pdf.epw
    heading("1. Vụ án")
    field("Số vụ án / hồ sơ:", facts.case_number)
    field("Người bị hỏi cung:", facts.suspect)
    field("Điều tra viên:", "; ".join(facts.interrogators))
    field("Căn cứ pháp lý:", facts.legal_basis)
    heading("2. Nơi ghi")
    field("Cơ sở / phòng:", f"{facts.site} / {facts.room}")
    field("Trạm ghi:", facts.station_id)
    field("Mã khoá trạm ghi:", facts.station_key_id, mono=True)
    pdf.set_right_margin(18)
    width = pdf.epw
    pdf.set_y(max(pdf.get_y(), top + qr_size + 2))

    heading("3. Thời gian ghi (giờ Việt Nam, Asia/Ho_Chi_Minh)")
    field("Bắt đầu:", facts.started)
    field("Kết thúc:", facts.ended)
    field("Tổng thời gian:", facts.duration)
    field("Lý do kết thúc:", facts.end_reason)

    heading(f"4. Tạm dừng và gián đoạn: {len(facts.interruptions)}")
    if not facts.interruptions:
        line("Không có tạm dừng hay gián đoạn nào.")
    for it in facts.interruptions:
        pdf.set_font("Sans", "B", 10)
        pdf.multi_cell(width, 5.5, f"{it.number}. {it.cause}: từ {it.start} đến {it.end} ({it.duration})",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if it.reason:
            field("    Lý do:", it.reason)
        if it.resume_reason:
            field("    Lý do tiếp tục:", it.resume_reason)

    heading(f"5. Đánh dấu của điều tra viên: {len(facts.markers)}")
    if not facts.markers:
        line("Không có đánh dấu nào.")
    for n, m in enumerate(facts.markers, start=1):
        line(f"{n}. {m.time}" + (f": {m.label}" if m.label else ""))

    heading("6. Niêm phong điện tử")
    count = str(facts.segment_count)
    if facts.record_count is not None and facts.record_count != facts.segment_count:
        count += f" (trong kho có {facts.record_count} bản ghi đoạn: KHÔNG KHỚP)"
    field("Số đoạn ghi:", count)
    field("Mã phiên ghi:", facts.session_id, mono=True)
    field("SHA-256 biên bản số:", facts.manifest_sha256, mono=True)
    field("Đầu chuỗi băm:", facts.chain_head, mono=True)
    field("Dấu niêm phong (QR):", facts.seal, mono=True)
    line("Kiểm tra: irms-verify seal \"<dấu niêm phong>\" --store <kho lưu trữ>. Mã QR ở trên chứa dấu niêm "
         "phong; bản ghi chỉ hợp lệ khi SHA-256 của biên bản số trong kho trùng với giá trị in trên phụ lục này "
         "và bản ghi được xác minh toàn vẹn.", 8.5)

    pdf.ln(6)
    col = width / 3
    y = pdf.get_y()
    for i, title in enumerate(("ĐIỀU TRA VIÊN", "NGƯỜI BỊ HỎI CUNG", "CÁN BỘ KỸ THUẬT")):
        pdf.set_xy(pdf.l_margin + i * col, y)
        pdf.set_font("Sans", "B", 9.5)
        pdf.cell(col, 5, title, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font("Sans", "", 8)
        pdf.cell(col, 4, "(Ký, ghi rõ họ tên)", align="C")
    if generated_at_us is not None:
        pdf.set_y(-20)
        pdf.set_font("Sans", "", 7.5)
        pdf.cell(width, 4, f"Lập lúc {local_time(generated_at_us)} {utc_offset_label(generated_at_us)} bởi IRMS",
                 align="R")
    return bytes(pdf.output())


def build_annex(header: dict[str, Any], manifest_bytes: bytes, record_count: int | None = None, *,
                generated_at_us: int | None = None) -> bytes:
    """The annex PDF for a closed session."""
    return render_annex(annex_facts(header, manifest_bytes, record_count), generated_at_us=generated_at_us)


def load_session_documents(store: ObjectStore, prefix: str) -> tuple[dict[str, Any], bytes, int]:
    """The signed header, the manifest bytes as stored, and the number of segment records in the store."""
    header = parse_json_object(store.get(header_name(prefix)), "session header")
    try:
        manifest = store.get(manifest_name(prefix))
    except ObjectNotFound:
        raise FormatError(f"session at {prefix} has no manifest (still recording or unterminated): "
                          "no annex before the session is closed") from None
    records = sum(1 for name in store.list(prefix + "seg/") if name.endswith(".json"))
    return header, manifest, records
