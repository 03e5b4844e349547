"""Hardware profiles: one strict TOML file per supported kit (hardware_profiles/*.toml)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.errors import ProfileError, first_problem

PROFILE_DIR = Path(__file__).resolve().parent.parent / "hardware_profiles"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Camera(Strict):
    role: str = "wide"
    source: Literal["lavfi", "rtsp", "v4l2", "http"]
    # lavfi: a filter graph; rtsp/http: a URL template ({host}, {user}, {password} filled from config);
    # v4l2: a device path such as /dev/video0
    device: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: int = Field(gt=0, le=60)
    latency_ms: int = 0
    passthrough: bool = False
    required: bool = True


class Microphone(Strict):
    role: str = "room"
    source: Literal["lavfi", "pulse", "alsa", "camera"]
    device: str
    rate: int = Field(default=48000, gt=0)
    channels: int = Field(default=1, ge=1, le=2)
    latency_ms: int = 0
    required: bool = True


class Encode(Strict):
    video_codec: Literal["libx264"] = "libx264"
    preset: str = "veryfast"
    crf: int = Field(default=28, ge=0, le=51)
    max_bitrate_kbps: int = Field(default=1500, gt=0)
    audio_codec: Literal["aac"] = "aac"
    audio_bitrate_kbps: int = Field(default=64, gt=0)


class Segmenting(Strict):
    seconds: int = Field(default=2, ge=1, le=10)


class Overlay(Strict):
    clock: bool = True
    room_label: bool = True
    font: str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    timezone: str = "Asia/Ho_Chi_Minh"


class Profile(Strict):
    format: Literal["irms.profile/1"]
    name: str
    description: str
    cameras: list[Camera] = Field(min_length=1)
    microphones: list[Microphone] = Field(min_length=1)
    encode: Encode = Encode()
    segment: Segmenting = Segmenting()
    overlay: Overlay = Overlay()

    def devices_json(self) -> list[dict[str, object]]:
        """The kit as it goes into the signed header (no credentials: URLs are templates)."""
        devs: list[dict[str, object]] = []
        for c in self.cameras:
            devs.append({"kind": "camera", "role": c.role, "source": c.source,
                         "size": f"{c.width}x{c.height}", "fps": c.fps})
        for m in self.microphones:
            devs.append({"kind": "microphone", "role": m.role, "source": m.source,
                         "rate": m.rate, "channels": m.channels})
        return devs


def load_profile(name_or_path: str) -> Profile:
    """Load a profile by kit name (hardware_profiles/NAME.toml) or by file path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(f"hardware profile {name_or_path!r} not found (known kits: {known})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read hardware profile {path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"hardware profile {path} is not valid TOML: {err}") from None
    try:
        return Profile.model_validate(raw)
    except ValidationError as err:
        raise ProfileError(f"hardware profile {path}: {first_problem(err)}") from None


def with_latencies(profile: Profile, latency_ms: dict[str, int]) -> Profile:
    """The profile with this station's calibrated device latencies applied."""
    cams = [c.model_copy(update={"latency_ms": latency_ms.get(f"camera.{c.role}", c.latency_ms)})
            for c in profile.cameras]
    mics = [m.model_copy(update={"latency_ms": latency_ms.get(f"microphone.{m.role}", m.latency_ms)})
            for m in profile.microphones]
    return profile.model_copy(update={"cameras": cams, "microphones": mics})
