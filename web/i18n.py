"""Vietnamese first, English available (R22): one small catalog, and local time display.

Message ids are English text; `vi` holds the translation. Reasons from
`web.coverage` are translated from their codes and parameters.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from web.coverage import Reason

LANGUAGES = ("vi", "en")

VI: dict[str, str] = {
    "Interrogation recording coverage": "Mức độ trang bị ghi âm ghi hình hỏi cung",
    "Log in": "Đăng nhập",
    "Log out": "Đăng xuất",
    "Username": "Tên đăng nhập",
    "Password": "Mật khẩu",
    "Dashboard": "Tổng quan",
    "Equipment": "Thiết bị",
    "Audit log": "Nhật ký kiểm tra",
    "Facilities equipped": "Cơ sở được trang bị",
    "Rooms working": "Phòng hoạt động",
    "Stations silent": "Trạm mất liên lạc",
    "Province": "Tỉnh/thành phố",
    "Facilities": "Cơ sở",
    "Rooms": "Phòng",
    "30-day uptime": "Tỉ lệ hoạt động 30 ngày",
    "Failing rooms": "Phòng không hoạt động",
    "Site": "Cơ sở",
    "Room": "Phòng",
    "Station": "Trạm",
    "Last heartbeat": "Tín hiệu gần nhất",
    "Reason": "Lý do",
    "Every room is working.": "Tất cả các phòng đang hoạt động.",
    "Trend over 30 days": "Diễn biến 30 ngày",
    "facilities equipped": "cơ sở được trang bị",
    "room uptime": "thời gian phòng hoạt động",
    "Times are shown in": "Thời gian hiển thị theo",
    "as of": "tại thời điểm",
    "never": "chưa có",
    "Sites and rooms": "Cơ sở và phòng",
    "Stations": "Trạm ghi",
    "Add site": "Thêm cơ sở",
    "Add room": "Thêm phòng",
    "Code": "Mã",
    "Name": "Tên",
    "Facility type": "Loại cơ sở",
    "Save": "Lưu",
    "Issue enrollment code": "Cấp mã đăng ký trạm",
    "Revoke": "Thu hồi",
    "Status": "Trạng thái",
    "enrolled": "đã đăng ký",
    "revoked": "đã thu hồi",
    "Hardware profile": "Cấu hình thiết bị",
    "Enrollment code (shown once)": "Mã đăng ký (chỉ hiển thị một lần)",
    "expires": "hết hạn",
    "Language": "Ngôn ngữ",
    "Error": "Lỗi",
    "The request is not valid.": "Yêu cầu không hợp lệ.",
    "Log in first.": "Vui lòng đăng nhập trước.",
    "Your role may not use this page.": "Vai trò của bạn không được phép dùng trang này.",
    "Not found.": "Không tìm thấy.",
    "This conflicts with what is already recorded.": "Yêu cầu trùng hoặc xung đột với dữ liệu đã có.",
    "Too many attempts; wait a moment.": "Quá nhiều lần thử; vui lòng chờ một lát.",
    "The server cannot do this right now.": "Máy chủ tạm thời không thực hiện được yêu cầu này.",
    "Details": "Chi tiết",
    "Back": "Quay lại",
    "Alerts": "Cảnh báo",
    "Rooms that cannot record now": "Phòng hiện không ghi được",
    "No room is failing.": "Không có phòng nào đang lỗi.",
    "Since": "Từ lúc",
    "Reasons": "Lý do",
    "Told": "Đã báo",
    "not yet": "chưa",
    "Acknowledged": "Đã xác nhận",
    "Acknowledge": "Xác nhận",
    "Cleared": "Đã khắc phục",
    "Working again": "Hoạt động lại",
    "Time": "Thời gian",
    "Actor": "Người thực hiện",
    "Action": "Hành động",
    "Target": "Đối tượng",
    "Chain verified": "Chuỗi băm hợp lệ",
    "Matches the heads stations witnessed": "Khớp với các đỉnh chuỗi mà các trạm đã lưu",
    "Audit heads collected from stations (JSON)": "Các đỉnh chuỗi nhật ký thu từ các trạm (JSON)",
    "Check": "Kiểm tra",
    "entries": "mục",
    "Revocation reason": "Lý do thu hồi",
    "detention_centre": "Trại tạm giam",
    "temporary_detention": "Nhà tạm giữ",
    "investigation_office": "Cơ quan điều tra",
    "procuracy": "Viện kiểm sát",
    "no_station": "chưa có trạm ghi được đăng ký",
    "station_revoked": "trạm {station} đã bị thu hồi",
    "never_reported": "trạm {station} chưa từng gửi tín hiệu",
    "silent": "trạm {station} mất liên lạc {minutes} phút",
    "probe_failed": "thiết bị {device} lỗi ({check}): {detail}",
    "probe_missing": "không có kết quả kiểm tra {kind}",
    "store_unreachable": "không kết nối được kho lưu trữ",
    "disk_unknown": "không rõ dung lượng đĩa trống",
    "disk_low": "đĩa còn {free_gib} GiB, dưới ngưỡng {min_gib} GiB",
    "clock_unknown": "không rõ độ lệch đồng hồ",
    "clock_off": "đồng hồ lệch {offset_s} giây (cho phép {tolerance_s} giây)",
    "no_rooms": "chưa có phòng hỏi cung nào được đăng ký",
    "selftest_missing": "chưa có kết quả tự kiểm tra hằng ngày",
    "selftest_failed": "lần tự kiểm tra gần nhất không đạt",
    "selftest_stale": "lần tự kiểm tra đạt gần nhất đã cách đây {hours} giờ",
    "Wrong username or password.": "Sai tên đăng nhập hoặc mật khẩu.",
}

EN_REASONS: dict[str, str] = {
    "no_station": "no recording station enrolled",
    "station_revoked": "station {station} is revoked",
    "never_reported": "station {station} never reported",
    "silent": "station {station} silent for {minutes} min",
    "probe_failed": "device {device} failed {check}: {detail}",
    "probe_missing": "no {kind} probe result",
    "store_unreachable": "object store unreachable",
    "disk_unknown": "free disk unknown",
    "disk_low": "disk {free_gib} GiB free, below {min_gib} GiB",
    "clock_unknown": "clock offset unknown",
    "clock_off": "clock off by {offset_s} s (tolerance {tolerance_s} s)",
    "no_rooms": "no registered interrogation room",
    "selftest_missing": "no daily self-test result",
    "selftest_failed": "the latest self-test failed",
    "selftest_stale": "the latest passing self-test is {hours} h old",
    "detention_centre": "Detention centre",
    "temporary_detention": "Temporary detention house",
    "investigation_office": "Investigation office",
    "procuracy": "Procuracy",
}

# Sessions, replay and copies (web/sessions.py, web/replay.py).
VI.update({
    "Sessions": "Phiên hỏi cung",
    "Interrogation sessions": "Các phiên hỏi cung",
    "Session": "Phiên",
    "Case number": "Số vụ án",
    "Suspect": "Bị can/người bị hỏi cung",
    "From": "Từ",
    "To": "Đến",
    "Search": "Tìm",
    "Started": "Bắt đầu",
    "Ended": "Kết thúc",
    "Verification": "Kiểm chứng",
    "verified": "đã kiểm chứng",
    "unterminated": "chưa khép lại",
    "failed": "không đạt",
    "not checked yet": "chưa kiểm chứng",
    "complete and untouched": "đầy đủ, không bị sửa đổi",
    "no manifest yet; only the chained segments are proven, not that the session is complete":
        "chưa có bản kê khép phiên; chỉ các đoạn đã nối chuỗi được chứng minh, chưa chứng minh phiên đầy đủ",
    "recording": "đang ghi",
    "ended": "đã kết thúc",
    "No session matches.": "Không có phiên nào phù hợp.",
    "Interrogators": "Điều tra viên",
    "Legal basis": "Căn cứ pháp lý",
    "Segments": "Số đoạn",
    "Duration": "Thời lượng",
    "Manifest SHA-256": "SHA-256 bản kê",
    "Timeline": "Diễn biến thời gian",
    "recorded": "đã ghi",
    "pause": "tạm dừng",
    "interruption": "gián đoạn",
    "device_lost": "mất tín hiệu thiết bị",
    "crash": "trạm ghi dừng đột ngột",
    "power": "mất điện",
    "health or device event": "sự kiện thiết bị",
    "Pauses and interruptions": "Tạm dừng và gián đoạn",
    "Cause": "Nguyên nhân",
    "None.": "Không có.",
    "Events": "Sự kiện",
    "signed manifest": "theo bản kê đã ký",
    "as the station sent them": "theo trạm ghi gửi về",
    "Time": "Thời gian",
    "Event": "Sự kiện",
    "Detail": "Chi tiết",
    "Replay and copies": "Xem lại và sao lưu",
    "Play": "Phát",
    "Replay": "Xem lại",
    "Annex to the minutes (PDF)": "Phụ lục biên bản (PDF)",
    "Sealed copy": "Bản sao niêm phong",
    "case-file": "hồ sơ vụ án",
    "procuracy-file": "hồ sơ kiểm sát",
    "Recorded at": "Thời điểm ghi",
    "Live": "Trực tiếp",
    "Watch live": "Theo dõi trực tiếp",
    "Markers": "Đánh dấu",
    "Marker label": "Nội dung đánh dấu",
    "Mark this moment": "Đánh dấu thời điểm này",
    "investigator": "điều tra viên",
    "Back to the session": "Quay lại phiên",
})

# Scoping, personal data, custody and sharing (web/scope.py, web/shares.py, admin units).
VI.update({
    "A user sees the sessions of the units they are assigned to and of every unit below them; the national unit "
    "sees all. A prosecutor also sees the cases assigned to them by name.":
        "Người dùng xem được các phiên của đơn vị mình được phân công và mọi đơn vị cấp dưới; đơn vị toàn quốc xem "
        "được tất cả. Kiểm sát viên còn xem được các vụ án được phân công đích danh.",
    "Access code": "Mã truy cập",
    "Add unit": "Thêm đơn vị",
    "Allowed": "Được phép",
    "Case": "Vụ án",
    "Case assigned to a prosecutor": "Phân công vụ án cho kiểm sát viên",
    "Cases assigned": "Vụ án đã phân công",
    "Custody": "Quản lý, sử dụng bản ghi",
    "Days": "Số ngày",
    "Give this link to the party. It is shown only now; the server keeps only its hash.":
        "Trao đường dẫn này cho người được chia sẻ. Đường dẫn chỉ hiện một lần; máy chủ chỉ giữ giá trị băm.",
    "Kind": "Loại",
    "Open": "Mở",
    "Parent": "Đơn vị cấp trên",
    "Party": "Người được chia sẻ",
    "Personal data withheld (case number, suspect, interrogators, legal basis, reasons)":
        "Dữ liệu cá nhân được che (số vụ án, người bị hỏi cung, điều tra viên, căn cứ pháp lý, lý do)",
    "Receipt (PDF)": "Biên nhận (PDF)",
    "Role": "Vai trò",
    "Share": "Chia sẻ",
    "Share this session": "Chia sẻ phiên này",
    "Shared": "Đã chia sẻ",
    "Shared recording": "Bản ghi được chia sẻ",
    "Shared with": "Chia sẻ cho",
    "Shared with outside parties": "Chia sẻ cho bên ngoài",
    "Site or room in a unit": "Cơ sở hoặc phòng thuộc đơn vị",
    "Sites and rooms in units": "Cơ sở và phòng theo đơn vị",
    "State": "Trạng thái",
    "Unit": "Đơn vị",
    "Units": "Đơn vị",
    "Until": "Đến",
    "User": "Người dùng",
    "User in a unit": "Người dùng thuộc đơn vị",
    "Users in units": "Người dùng theo đơn vị",
    "What": "Việc",
    "Who": "Ai",
    "assign": "phân công",
    "remove": "bỏ phân công",
    "court": "toà án",
    "defence_counsel": "người bào chữa",
    "other": "khác",
    "open": "đang mở",
    "expired": "đã hết hạn",
    "personal data (auditors)": "dữ liệu cá nhân (kiểm tra viên)",
    "withheld": "được che",
})

# Accounts (web/auth.py, web/admin.py users).
VI.update({
    "My account": "Tài khoản của tôi",
    "Password changed; your other logins have ended.": "Đã đổi mật khẩu; các phiên đăng nhập khác của bạn đã kết thúc.",
    "Change password": "Đổi mật khẩu",
    "Current password": "Mật khẩu hiện tại",
    "New password": "Mật khẩu mới",
    "New password again": "Nhập lại mật khẩu mới",
    "Users": "Người dùng",
    "Add user": "Thêm người dùng",
    "Role": "Vai trò",
    "Open logins": "Phiên đăng nhập đang mở",
    "Change role": "Đổi vai trò",
    "active": "đang hoạt động",
    "disabled": "đã khoá",
    "Enable": "Mở khoá",
    "Disable": "Khoá",
    "Reset password": "Đặt lại mật khẩu",
    "New password (shown once)": "Mật khẩu mới (chỉ hiện một lần)",
    "Give it to the user in person; they change it under My account.":
        "Trao trực tiếp cho người dùng; họ tự đổi trong mục Tài khoản của tôi.",
})

# Two-factor login (web/twofactor.py).
VI.update({
    "Two-factor code": "Mã xác thực hai lớp",
    "The six digits from the authenticator app, or a recovery code":
        "Sáu chữ số trên ứng dụng xác thực, hoặc một mã khôi phục",
    "Cancel": "Huỷ",
    "Two-factor enrolment": "Đăng ký xác thực hai lớp",
    "Your role logs in with a code from an authenticator app as well as the password.":
        "Vai trò của bạn đăng nhập bằng mật khẩu và thêm mã từ ứng dụng xác thực.",
    "Enrolling again replaces your authenticator and your recovery codes.":
        "Đăng ký lại sẽ thay ứng dụng xác thực và các mã khôi phục cũ.",
    "Scan the code with the authenticator app, then type the six digits it shows.":
        "Quét mã bằng ứng dụng xác thực, rồi nhập sáu chữ số ứng dụng hiển thị.",
    "QR code for the authenticator app": "Mã QR cho ứng dụng xác thực",
    "Or type this key into the app:": "Hoặc nhập khoá này vào ứng dụng:",
    "Code": "Mã",
    "Confirm": "Xác nhận",
    "Recovery codes": "Mã khôi phục",
    "Recovery codes (shown once)": "Mã khôi phục (chỉ hiện một lần)",
    "Two-factor login is on.": "Đã bật đăng nhập hai lớp.",
    "Each code logs you in once without the app. Keep them on paper, apart from the phone.":
        "Mỗi mã cho đăng nhập một lần không cần ứng dụng. Hãy chép ra giấy, cất riêng với điện thoại.",
    "Continue": "Tiếp tục",
    "wrong code": "Sai mã.",
    "this code was used already; wait for the next one": "Mã này đã được dùng; hãy chờ mã tiếp theo.",
    "wrong code; check the phone's clock and scan the code again":
        "Sai mã; hãy kiểm tra đồng hồ điện thoại và quét lại mã.",
    "Two-factor login": "Đăng nhập hai lớp",
    "Reset two-factor": "Đặt lại xác thực hai lớp",
    "on": "bật",
    "off": "tắt",
    "Directory (LDAP)": "Thư mục (LDAP)",
})


STATUS_TEXT = {400: "The request is not valid.", 401: "Log in first.", 403: "Your role may not use this page.",
               404: "Not found.", 405: "The request is not valid.",
               409: "This conflicts with what is already recorded.", 413: "The request is not valid.",
               429: "Too many attempts; wait a moment."}
"""What an error page says first, in the page's language; the error's own (technical) message follows."""


def status_text(status: int) -> str:
    return STATUS_TEXT.get(status, "The server cannot do this right now.")


def translate(message: str, lang: str, **params: object) -> str:
    table = VI if lang == "vi" else EN_REASONS
    text = table.get(message, message)
    return text.format(**params) if params else text


# What a failed probe means, by check, for the Vietnamese pages (the station reports its detail in English).
VI_CHECKS = {
    "camera.frames": "camera không gửi hình",
    "camera.size": "hình sai kích thước",
    "camera.black": "hình ảnh bị đen",
    "camera.frozen": "hình ảnh bị đứng",
    "camera.covered": "ống kính bị che",
    "camera.focus": "hình ảnh mất nét",
    "mic.samples": "micro không gửi âm thanh",
    "mic.silent": "micro không có tín hiệu",
    "mic.clipping": "âm thanh bị méo (quá mức)",
    "disk.free": "ổ đĩa sắp đầy",
    "store.reachable": "không kết nối được kho lưu trữ",
    "clock.offset": "đồng hồ lệch",
}


def reason_text(r: Reason, lang: str) -> str:
    params = dict(r.params)
    if lang == "vi" and r.code == "probe_failed" and str(params.get("check")) in VI_CHECKS:
        params["detail"] = VI_CHECKS[str(params["check"])]
    try:
        return translate(r.code, lang, **params)
    except (KeyError, IndexError):
        return r.code


def local_time(at_us: int | None, tz_name: str, with_seconds: bool = False) -> str:
    """dd/mm/yyyy HH:MM (24-hour) in the display time zone; UTC is what is stored."""
    if at_us is None:
        return "—"
    t = dt.datetime.fromtimestamp(at_us / 1_000_000, ZoneInfo(tz_name))
    return t.strftime("%d/%m/%Y %H:%M:%S" if with_seconds else "%d/%m/%Y %H:%M")


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


# Retention, legal hold and disposal (web/retention.py).
VI.update({
    "Retention": "Thời hạn lưu trữ",
    "Retention policies": "Chính sách lưu trữ",
    "Disposals": "Tiêu huỷ",
    "A session takes the policy of its unit, else of the nearest unit above; within a unit, the policy for its case category before the policy for every category. A new policy for the same unit and category replaces the old one. The store only ever extends a lock.":  # noqa: E501
        "Phiên ghi theo chính sách của đơn vị mình, nếu không có thì của đơn vị cấp trên gần nhất; trong một đơn vị, "
        "chính sách cho loại vụ án được ưu tiên hơn chính sách chung. Chính sách mới cho cùng đơn vị và loại vụ án "
        "thay thế chính sách cũ. Kho lưu trữ chỉ kéo dài khoá, không bao giờ rút ngắn.",
    "A session whose retention ended and that no hold covers may be proposed for disposal. Two different people approve it (not the one who proposed it); its objects are removed from the store only after the undo window, and a signed tombstone is kept for ever.":  # noqa: E501
        "Phiên ghi đã hết thời hạn lưu trữ và không bị phong toả có thể được đề nghị tiêu huỷ. Hai người khác nhau "
        "phê duyệt (không phải người đề nghị); dữ liệu chỉ bị xoá khỏi kho sau thời gian cho phép huỷ bỏ, và biên "
        "bản tiêu huỷ có chữ ký được lưu vĩnh viễn.",
    "Each session is kept as long as the policy of its unit and case category says; a legal hold keeps it whatever the policy.":  # noqa: E501
        "Mỗi phiên ghi được lưu theo chính sách của đơn vị và loại vụ án; lệnh phong toả giữ phiên ghi bất kể "
        "chính sách.",
    "Approve": "Phê duyệt",
    "Approved by": "Người phê duyệt",
    "Case category": "Loại vụ án",
    "Case outcome": "Kết quả vụ án",
    "Case status": "Tình trạng vụ án",
    "Executed": "Đã thực hiện",
    "Holds in force": "Lệnh phong toả đang có hiệu lực",
    "Legal hold": "Phong toả",
    "Lift": "Gỡ bỏ",
    "Lock mode": "Chế độ khoá",
    "Place": "Đặt",
    "Place a legal hold": "Đặt lệnh phong toả",
    "Placed": "Thời điểm đặt",
    "Placed by": "Người đặt",
    "Policy": "Chính sách",
    "Propose every disposal due": "Đề nghị tiêu huỷ mọi phiên ghi đến hạn",
    "Proposed by": "Người đề nghị",
    "Retained until": "Lưu đến",
    "Stop": "Dừng",
    "Tombstone": "Biên bản tiêu huỷ",
    "Years": "Năm",
    "days": "ngày",
    "end of recording": "kết thúc ghi",
    "every category": "mọi loại vụ án",
    "every session of the case": "mọi phiên ghi của vụ án",
    "every unit": "mọi đơn vị",
    "final judgment": "bản án có hiệu lực pháp luật",
    "locked in the store until": "khoá trong kho đến",
    "removed after": "xoá sau",
    "this session": "phiên ghi này",
    "whole case": "cả vụ án",
    "no_policy": "chưa có chính sách",
    "awaiting_outcome": "chờ bản án có hiệu lực",
    "retained": "đang lưu",
    "retention_ended": "hết thời hạn lưu",
    "held": "bị phong toả",
    "disposal": "đang tiêu huỷ",
    "disposed": "đã tiêu huỷ",
    "proposed": "đã đề nghị",
    "approved": "đã phê duyệt",
    "executed": "đã thực hiện",
    "stopped": "đã dừng",
    "investigating": "đang điều tra",
    "prosecuted": "đã truy tố",
    "judgment": "đã xét xử",
    "final": "bản án có hiệu lực",
    "closed": "đã đình chỉ/kết thúc",
})


# --- the prosecutor's desk (issue 14): session page, player, sealed copies as jobs, sessions by case ---------

EVENT_WORDS = {
    "start": "recording started", "capture_stop": "capture stopped", "pause": "paused", "resume": "resumed",
    "device_lost": "device lost", "store_full": "disk full", "health": "device problem",
    "health_ok": "device working again", "salvaged": "segment salvaged", "recovered": "recovered after a crash",
    "clock_step": "clock corrected", "clock_offset": "clock offset measured", "torn_segment": "torn segment",
    "partial_kept": "partial segment kept", "segment_lost": "segment lost", "object_kept": "object kept",
    "object_damaged": "object damaged", "object_quarantined": "object quarantined",
    "journal_rebuilt": "journal rebuilt", "marker": "marker", "witness_start": "live viewer joined",
    "witness_stop": "live viewer left", "end": "recording ended",
}
"""Session event kinds (evidence.formats.EVENT_KINDS) in words; translated like any message."""

END_REASON_WORDS = {
    "stopped": "ended by the investigator", "duration_reached": "planned duration reached",
    "recovered_after_crash": "closed after a station crash", "device_failure": "devices failed",
}
"""End reasons (evidence.formats.END_REASONS) in words."""

CAUSE_WORDS = {
    "pause": "pause", "device_lost": "device lost", "crash": "station crash", "power": "power cut",
    "store_full": "disk full", "encoder_stall": "encoder stalled",
}
"""Interruption causes (evidence.formats.INTERRUPTION_CAUSES) in words."""

RULE_WORDS = {
    "V01": "the session header is missing or not valid",
    "V02": "the station key is not the trusted one",
    "V03": "the session header's signature does not match",
    "V04": "a segment record is altered or not signed by the station",
    "V05": "an object is missing or does not belong",
    "V06": "a segment's content was altered or replaced",
    "V07": "the chain of segments is broken",
    "V08": "a segment is missing",
    "V09": "the session has no closing manifest yet",
    "V10": "the closing manifest is altered or not valid",
    "V11": "the manifest does not close the chain (segments cut off)",
    "V12": "a data key object is missing or altered",
    "V13": "the history differs from what the server witnessed while recording",
    "V14": "a segment does not decrypt to its recorded content",
    "V15": "a segment's picture or sound does not decode",
    "V16": "time is missing between segments and is not explained",
    "V17": "the session's span is not covered by recording and declared interruptions",
    "V18": "the time-stamp of the manifest does not verify",
    "V19": "a time-stamp of a chain head does not verify",
}
"""The verifier's rules (docs/verifier-rules.md) in words a prosecutor reads."""

ACTION_WORDS = {
    "session.view": "viewed", "session.replay": "replayed", "session.live": "watched live",
    "session.marker": "marker added", "session.annex": "annex printed",
    "session.export_requested": "sealed copy asked for", "session.export": "sealed copy made",
    "session.export_failed": "sealed copy failed", "session.export_download": "sealed copy downloaded",
    "custodian.key_use": "data key used", "share.create": "shared", "share.revoke": "share revoked",
    "share.open": "share opened", "share.replay": "replayed by the outside party",
    "share.export": "sealed copy downloaded by the outside party",
}
"""Custody actions (audit entries about one session) in words."""

EN_REASONS.update({
    "no_policy": "no retention policy", "awaiting_outcome": "awaiting the final judgment",
    "retention_ended": "retention ended", "disposal": "being disposed of",
    # sealed copies' job states and steps
    "queued": "waiting", "running": "being built", "done": "sealed", "expired": "removed after its keeping time",
    "checking": "checking the documents", "copying": "copying, each segment checked", "sealing": "sealing",
})

VI.update({
    # event kinds
    "recording started": "bắt đầu ghi", "capture stopped": "dừng thu", "paused": "tạm dừng",
    "resumed": "tiếp tục ghi", "device lost": "mất tín hiệu thiết bị", "disk full": "đầy ổ đĩa",
    "device problem": "thiết bị gặp sự cố", "device working again": "thiết bị hoạt động trở lại",
    "segment salvaged": "đã cứu được đoạn ghi", "recovered after a crash": "khôi phục sau sự cố",
    "clock corrected": "đồng hồ được chỉnh", "clock offset measured": "đo độ lệch đồng hồ",
    "torn segment": "đoạn ghi bị cắt dở", "partial segment kept": "giữ đoạn ghi chưa trọn",
    "segment lost": "mất đoạn ghi", "object kept": "giữ tệp", "object damaged": "tệp bị hỏng",
    "object quarantined": "cách ly tệp", "journal rebuilt": "dựng lại nhật ký trạm", "marker": "đánh dấu",
    "live viewer joined": "người theo dõi trực tiếp vào xem", "live viewer left": "người theo dõi trực tiếp rời đi",
    "recording ended": "kết thúc ghi",
    # custody actions
    "viewed": "xem phiên", "replayed": "xem lại", "watched live": "theo dõi trực tiếp",
    "marker added": "thêm đánh dấu", "annex printed": "in phụ lục",
    "sealed copy asked for": "yêu cầu bản sao niêm phong", "sealed copy made": "đã lập bản sao niêm phong",
    "sealed copy failed": "lập bản sao niêm phong không thành", "sealed copy downloaded": "tải bản sao niêm phong",
    "data key used": "dùng khoá dữ liệu", "shared": "chia sẻ", "share revoked": "thu hồi chia sẻ",
    "share opened": "mở liên kết chia sẻ", "replayed by the outside party": "bên ngoài xem lại",
    "sealed copy downloaded by the outside party": "bên ngoài tải bản sao niêm phong",
    # end reasons, causes
    "ended by the investigator": "điều tra viên kết thúc", "planned duration reached": "hết thời lượng dự kiến",
    "closed after a station crash": "khép lại sau sự cố trạm ghi", "devices failed": "thiết bị hỏng",
    "station crash": "trạm ghi dừng đột ngột", "power cut": "mất điện", "encoder stalled": "bộ mã hoá bị treo",
    # rules
    "the session header is missing or not valid": "thiếu hoặc sai phần đầu phiên ghi",
    "the station key is not the trusted one": "khoá trạm ghi không phải khoá được tin cậy",
    "the session header's signature does not match": "chữ ký phần đầu phiên ghi không khớp",
    "a segment record is altered or not signed by the station": "bản ghi của một đoạn bị sửa hoặc không do trạm ký",
    "an object is missing or does not belong": "thiếu tệp hoặc có tệp lạ",
    "a segment's content was altered or replaced": "nội dung một đoạn ghi đã bị sửa hoặc thay thế",
    "the chain of segments is broken": "chuỗi các đoạn ghi bị đứt",
    "a segment is missing": "thiếu một đoạn ghi",
    "the session has no closing manifest yet": "phiên chưa có bản kê khép phiên",
    "the closing manifest is altered or not valid": "bản kê khép phiên bị sửa hoặc không hợp lệ",
    "the manifest does not close the chain (segments cut off)": "bản kê không khép chuỗi (bị cắt bớt đoạn ghi)",
    "a data key object is missing or altered": "thiếu hoặc bị sửa tệp khoá dữ liệu",
    "the history differs from what the server witnessed while recording":
        "lịch sử ghi khác với điều máy chủ đã chứng kiến trong lúc ghi",
    "a segment does not decrypt to its recorded content": "một đoạn ghi không giải mã ra đúng nội dung đã ghi",
    "a segment's picture or sound does not decode": "hình hoặc tiếng của một đoạn ghi không giải mã được",
    "time is missing between segments and is not explained": "thiếu thời gian giữa các đoạn ghi mà không có giải trình",
    "the session's span is not covered by recording and declared interruptions":
        "thời gian phiên không khớp với thời gian ghi và các lần gián đoạn đã khai",
    "the time-stamp of the manifest does not verify": "dấu thời gian của bản kê không hợp lệ",
    "a time-stamp of a chain head does not verify": "dấu thời gian của một mắt chuỗi không hợp lệ",
    # session page
    "Session without a case number": "Phiên chưa có số vụ án",
    "Session of a case withheld from you": "Phiên của vụ án không hiển thị với bạn",
    "Export": "Xuất bản sao",
    "Annex": "Phụ lục",
    "Rule": "Quy tắc",
    "End reason": "Lý do kết thúc",
    "Session id": "Mã phiên",
    # player
    "Playback speed": "Tốc độ phát",
    "Back 10 s": "Lùi 10 giây",
    "Forward 10 s": "Tới 10 giây",
    "Click the timeline to jump there": "Bấm vào thanh thời gian để chuyển tới đó",
    # sealed copies as jobs
    "Sealed copies": "Bản sao niêm phong",
    "Sealed copy being built": "Bản sao niêm phong đang được lập",
    "queued": "đang chờ",
    "running": "đang lập",
    "done": "đã niêm phong",
    "expired": "đã xoá sau thời hạn giữ",
    "checking": "đang kiểm chứng tài liệu",
    "copying": "đang sao chép và kiểm từng đoạn",
    "sealing": "đang niêm phong",
    "Progress": "Tiến độ",
    "Download": "Tải về",
    "Size": "Dung lượng",
    "Seal (SHA-256 of the file)": "Dấu niêm phong (SHA-256 của tệp)",
    "Asked for": "Thời điểm yêu cầu",
    "Copy": "Bản sao",
    "The download starts at once and receives the copy as it is built; once sealed, an interrupted download "
    "resumes where it stopped.":
        "Tải về bắt đầu ngay và nhận bản sao trong lúc đang lập; khi đã niêm phong, lần tải bị ngắt sẽ tiếp tục "
        "từ chỗ dừng.",
    "No sealed copy asked for yet.": "Chưa yêu cầu bản sao niêm phong nào.",
    "All sealed copies": "Tất cả bản sao niêm phong",
    # sessions list
    "Interrogator": "Điều tra viên",
    "Sort": "Sắp xếp",
    "newest first": "mới nhất trước",
    "oldest first": "cũ nhất trước",
    "Page": "Trang",
    "of": "/",
    "Previous": "Trang trước",
    "Next": "Trang sau",
    "cases": "vụ án",
    "sessions": "phiên",
})


def duration(us: int | None) -> str:
    """h:mm:ss (hours not capped at 24); — when unknown."""
    if us is None:
        return "—"
    total = max(int(us), 0) // 1_000_000
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def event_text(kind: str, lang: str) -> str:
    return translate(EVENT_WORDS.get(kind, kind), lang)


def end_reason_text(reason: str, lang: str) -> str:
    return translate(END_REASON_WORDS.get(reason, reason), lang) if reason else ""


def cause_text(cause: str, lang: str) -> str:
    return translate(CAUSE_WORDS.get(cause, cause), lang)


def action_text(action: str, lang: str) -> str:
    return translate(ACTION_WORDS.get(action, action), lang)


def event_detail_text(kind: str, detail: str, lang: str) -> str:
    """An event's detail; the codes some kinds carry (capture_stop, end: an end reason or `pause`) in words."""
    if kind in ("capture_stop", "end") and (detail in END_REASON_WORDS or detail in ("pause", "duration_reached")):
        return end_reason_text(detail, lang) if detail in END_REASON_WORDS else cause_text(detail, lang)
    return detail


def rule_text(rule: str, lang: str) -> str:
    """`V06: a segment's content was altered or replaced`, in the page's language."""
    words = RULE_WORDS.get(rule)
    return f"{rule}: {translate(words, lang)}" if words else rule
