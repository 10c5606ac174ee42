"""peopleflow: where shoppers spend time and how they move, from a store's cameras.

Built only on conveyor's public API. The parts, each usable alone:

- ``config``: the store's configuration (cameras, calibration, zones, floor plan), validated;
- ``geometry``: homographies from image to floor-plan coordinates;
- ``simulate``: a synthetic store: shoppers walking between zones, with ground truth;
- ``analytics``: dwell heat maps, zone dwell and visits, zone-to-zone flows, visitor counts,
  and their accuracy against ground truth.
"""

from peopleflow.analytics import FloorTrack, Report, accuracy, analyse
from peopleflow.config import Camera, ConfigError, FloorPlan, StoreConfig, Zone, load_config
from peopleflow.geometry import Homography

__all__ = [
    "Camera",
    "ConfigError",
    "FloorPlan",
    "FloorTrack",
    "Homography",
    "Report",
    "StoreConfig",
    "Zone",
    "accuracy",
    "analyse",
    "load_config",
]
