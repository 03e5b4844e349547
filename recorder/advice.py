"""What a pre-flight check (or a stopped recording) means for the investigator, in plain words: what was
checked, what is wrong, what to do next and whom to call. Message ids are English (recorder/translations
holds the Vietnamese); the check's raw detail stays for the "details" toggle and the refusal log.
"""

from __future__ import annotations

from dataclasses import dataclass

from evidence.catalogue import N_
from recorder.preflight import Check

CALL_IT = "it"
"""Whom to call: the unit's IT desk (station.toml `support_contact` names it on the screen)."""


@dataclass(frozen=True)
class Advice:
    label: str
    """What was checked ("Camera picture")."""
    problem: str = ""
    """What is wrong, when the check did not pass."""
    action: str = ""
    """What the investigator does next."""
    call: str | None = None
    """Whom to call (CALL_IT), or None when the investigator can fix it alone."""


LABELS = {
    "camera.frames": N_("Camera picture"),
    "camera.size": N_("Picture size"),
    "camera.black": N_("Picture brightness"),
    "camera.frozen": N_("Picture moving"),
    "camera.covered": N_("Camera lens uncovered"),
    "camera.focus": N_("Picture sharpness"),
    "camera.synthetic": N_("Camera (generated test picture)"),
    "camera.unprobed": N_("Camera"),
    "mic.samples": N_("Microphone sound"),
    "mic.silent": N_("Sound level"),
    "mic.clipping": N_("Sound not distorted"),
    "mic.synthetic": N_("Microphone (generated test tone)"),
    "mic.unprobed": N_("Microphone"),
    "kit": N_("Room equipment"),
    "disk.free": N_("Space on the station's disk"),
    "clock.offset": N_("Station clock"),
    "store.reachable": N_("Central store"),
    "recorder.preflight": N_("Station start"),
}

# check name -> (problem, action, call) when the check did not pass.
PROBLEMS: dict[str, tuple[str, str, str | None]] = {
    "camera.frames": (N_("The camera sends no picture."),
                      N_("Check that the camera is switched on and its cable is plugged in."), CALL_IT),
    "camera.size": (N_("The camera sends a picture of the wrong size for this room's equipment."),
                    N_("Recording cannot start with this camera setting."), CALL_IT),
    "camera.black": (N_("The picture is black."),
                     N_("Switch on the room's light and take the cap off the lens."), CALL_IT),
    "camera.frozen": (N_("The picture does not move (frozen)."),
                      N_("Switch the camera off and on again, or unplug and re-plug its cable."), CALL_IT),
    "camera.covered": (N_("Something covers the camera's lens."),
                       N_("Remove whatever covers the camera."), None),
    "camera.focus": (N_("The picture is blurred."),
                     N_("Wipe the lens and check that the camera points at the table."), CALL_IT),
    "camera.unprobed": (N_("The station cannot check this camera."),
                        N_("Recording cannot start until the camera can be checked."), CALL_IT),
    "mic.samples": (N_("The microphone sends no sound."),
                    N_("Check the microphone's cable and that it is switched on."), CALL_IT),
    "mic.silent": (N_("The microphone hears nothing (silent)."),
                   N_("Check that the microphone is switched on and not muted; speak close to it."), CALL_IT),
    "mic.clipping": (N_("The sound is too loud and distorted."),
                     N_("Move the microphone away from noise, or lower its volume."), CALL_IT),
    "mic.unprobed": (N_("The station cannot check this microphone."),
                     N_("Recording cannot start until the microphone can be checked."), CALL_IT),
    "kit": (N_("The room's equipment list names no camera or microphone to check."),
            N_("Recording cannot start in this room until its equipment is set up."), CALL_IT),
    "disk.free": (N_("The station's disk has too little space for a session this long."),
                  N_("Enter a shorter expected length, or have the disk cleared."), CALL_IT),
    "clock.offset": (N_("The station's clock is wrong: the times in the record would be wrong."),
                     N_("Recording cannot start until the clock is set right."), CALL_IT),
    "recorder.preflight": (N_("The station refused to start the recording."),
                           N_("Recording cannot start on this station now."), CALL_IT),
}

# Warnings: recording may start.
WARNINGS: dict[str, tuple[str, str, str | None]] = {
    "store.reachable": (N_("The central store cannot be reached now."),
                        N_("You may record: the recording is kept safely on this station and sent to the store "
                           "when it is back. Tell the IT desk if this lasts."), None),
    "clock.offset": (N_("The station's clock could not be compared with the server."),
                     N_("You may record; the clock is measured again later. Tell the IT desk if this lasts."), None),
}


def advise(check: Check) -> Advice:
    """The plain-words reading of one check (message ids; the screen translates them)."""
    label = LABELS.get(check.name, N_("Other check"))
    if check.verdict == "ok":
        return Advice(label)
    table = WARNINGS if check.verdict == "warning" else PROBLEMS
    problem, action, call = table.get(check.name, PROBLEMS.get(check.name, (
        N_("This check did not pass."), N_("Recording cannot start until it passes."), CALL_IT)))
    return Advice(label, problem, action, call)


STOPPED = Advice(N_("Recording"), N_("The recording stopped: the camera or microphone delivered nothing."),
                 N_("What was recorded is sealed and kept. Check the equipment and start a new session."), CALL_IT)
"""A session that ended because the kit's devices delivered nothing, or failed to close."""
