"""A store file changed while the service runs, and only its cameras: they are added to and
removed from the running pipeline (``conveyor.start``'s handle), no other camera touched.

``camera_changes(old, new)`` compares two configurations: None when anything but the cameras
changed (the floor plan, zones, detector, ...: the service starts its run again with the new
file), else which cameras go and which come. A camera whose source, fps, size or calibration
changed goes and comes back: its tracks start again with its new calibration (the pipeline's
messages carry each camera's configuration, so the tasks built for the old file know it).

``LiveCameras`` applies them: a removed camera's source ends (what it sent is finished); an
added one is opened (its frame size read), its detector input chosen, and its source added
with a frame store of its own. A file camera added joins at the video's current time, so that
its instants line up with the others'. A camera name's source is ``Frames[name]`` the first
time and ``Frames[name]#2``, ... after (conveyor uses a source name once per run).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import conveyor as cv
from peopleflow.app import Prepared, coverage_of, detector_inputs, probe
from peopleflow.config import Camera, StoreConfig
from peopleflow.coverage import Coverage
from peopleflow.pipeline import camera_source

log = logging.getLogger("peopleflow")


@dataclass(frozen=True)
class CameraChanges:
    removed: tuple[str, ...]  # camera names whose source ends
    added: tuple[Camera, ...]  # cameras (of the new file) whose source starts

    def __bool__(self) -> bool:
        return bool(self.removed or self.added)

    def describe(self) -> str:
        parts = [f"-{n}" for n in self.removed] + [f"+{c.name}" for c in self.added]
        return " ".join(parts) or "no camera changed"


def camera_changes(old: StoreConfig, new: StoreConfig) -> CameraChanges | None:
    """What changed in ``new``'s cameras; None if anything else changed too."""
    if _rest(old) != _rest(new):
        return None
    before = {c.name: c for c in old.cameras}
    after = {c.name: c for c in new.cameras}
    changed = {n for n in before.keys() & after.keys() if not before[n].same_as(after[n])}
    removed = tuple(n for n in before if n not in after or n in changed)
    added = tuple(c for n, c in after.items() if n not in before or n in changed)
    return CameraChanges(removed, added)


def _rest(cfg: StoreConfig) -> tuple[object, ...]:
    """Everything of a store's configuration but its cameras, comparable."""
    plan = cfg.plan.to_json()
    return (
        cfg.name,
        repr(plan),
        cfg.floor_image,
        cfg.identities,
        cfg.min_visit,
        cfg.detector,
    )


class LiveCameras:
    """The cameras of a started run, as the store file changes them."""

    def __init__(self, run: cv.RunHandle, prepared: Prepared) -> None:
        self.run, self.settings = run, prepared.settings
        self.cfg = prepared.cfg
        self.specs = {s.name: s for s in prepared.specs}
        self.sources = {name: f"Frames[{name}]" for name in self.specs}  # camera -> source
        self.used: dict[str, int] = dict.fromkeys(self.specs, 1)  # sources named per camera

    def apply(
        self, new: StoreConfig, changes: CameraChanges, video_seconds: Callable[[], float]
    ) -> Coverage:
        """Remove and add cameras in the run; the store's coverage with the new cameras.
        ``video_seconds``: where the video is now (file cameras added start there)."""
        for name in changes.removed:
            source = self.sources.pop(name, None)
            if source is not None:
                self.run.remove_source(source)
                del self.specs[name]
        if changes.added:
            wanted = dataclasses.replace(new, cameras=changes.added)
            specs, failed, _ = probe(wanted, None)
            for name, why in failed.items():
                log.error("camera %s: %s (not added; the other cameras go on)", name, why)
            inputs = detector_inputs(wanted, specs)
            settings = dataclasses.replace(
                self.settings,
                store=new,
                skip=(),
                start_seconds=video_seconds(),
                detector_inputs=tuple(
                    sorted({**dict(self.settings.detector_inputs), **inputs}.items())
                ),
            )
            for spec in specs:
                self.used[spec.name] = count = self.used.get(spec.name, 0) + 1
                source = f"Frames[{spec.name}]" + (f"#{count}" if count > 1 else "")
                self.run.add_source(camera_source(settings, spec.name, source), [spec])
                self.sources[spec.name] = source
                self.specs[spec.name] = spec
        self.cfg = new
        return coverage_of(new, list(self.specs.values()))
