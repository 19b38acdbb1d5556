"""Export: stereo VR clips (side-by-side, half side-by-side, top-bottom) and mono video as
H.264/H.265 MP4 or Matroska with AAC audio and stereo metadata, per-eye PNG sequences with the
camera rig, and motion data (CSV, JSON, Ditto's packed .npy). Qt-free.

The core is :func:`export_project`, a generator of progress reports with a cancel flag; the CLI
(``talking-head-studio export`` / ``export-motion``) and the studio's export dialog drive it.
"""

from studio.export.errors import ExportCancelled, ExportError
from studio.export.job import CancelFlag, ExportProgress, export_project, run_export
from studio.export.motion import (
    MOTION_COLUMNS,
    export_motion,
    import_motion,
    motion_table,
    read_motion,
)
from studio.export.settings import (
    CODECS,
    FORMATS,
    LAYOUT_TAGS,
    LAYOUTS,
    ExportPlan,
    ExportSettings,
    plan_export,
    tagged_path,
)

__all__ = [
    "CODECS",
    "FORMATS",
    "LAYOUTS",
    "LAYOUT_TAGS",
    "MOTION_COLUMNS",
    "CancelFlag",
    "ExportCancelled",
    "ExportError",
    "ExportPlan",
    "ExportProgress",
    "ExportSettings",
    "export_motion",
    "export_project",
    "import_motion",
    "motion_table",
    "plan_export",
    "read_motion",
    "run_export",
    "tagged_path",
]
