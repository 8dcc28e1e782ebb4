"""QGIS / Qt names that differ between QGIS 3.22 (Qt5) and QGIS 3.36+ / 4.x (Qt6): the one place that knows.

Every enum value the plugin uses is spelled here once, in its newest form when the running QGIS has it and in the
*scoped* old form otherwise (``Class.Enum.Member``; PyQt5 >= 5.11 accepts that too). Qt6 builds of QGIS reject
unscoped members (``QgsProcessingParameterNumber.Integer``), ``QVariant.Type`` field types and ``QAction`` from
``QtWidgets``; QGIS 3.36+ moved most enums into ``Qgis`` (the old names are deprecated aliases there).

Rules for contributors (checked by ``tests/plugin/test_qt6_safe.py``, which walks the plugin's source):
* never write an unscoped enum member (``Qt.AlignLeft``, ``Qgis.Info``, ``QgsWkbTypes.MultiPolygon``): add a
  name here, or write the scoped form ``Qt.AlignmentFlag.AlignLeft`` where it exists on every supported QGIS;
* never use ``QVariant`` field types, ``QgsMapLayerType``, ``PyQt5`` imports or ``exec_()`` outside this module.
"""

from qgis.core import Qgis, QgsFeatureSink, QgsVectorFileWriter

# Qgis.versionInt() is in every supported QGIS's binding (3.12+) and in QGIS 4's; Qgis.QGIS_VERSION_INT is a
# Python-side alias that qgis/core/__init__.py adds on 3.x, absent from QGIS 4's Qgis binding file
# (tests/plugin/test_qgis4_api.py, tests/data/qgis4_api.json).
QGIS_VERSION_INT = Qgis.versionInt()


def _pick(new_owner, new_path: str, old):
    """``new_owner.<new_path>`` when the running QGIS has it, else the old (scoped) value ``old()``."""
    obj = new_owner
    try:
        for part in new_path.split("."):
            obj = getattr(obj, part)
        return obj
    except AttributeError:
        return old()


# --- Processing -------------------------------------------------------------------------------------------
def _old_core(path):
    def get():
        import qgis.core as core

        obj = core
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    return get


NUMBER_INTEGER = _pick(
    Qgis, "ProcessingNumberParameterType.Integer", _old_core("QgsProcessingParameterNumber.Type.Integer")
)
NUMBER_DOUBLE = _pick(
    Qgis, "ProcessingNumberParameterType.Double", _old_core("QgsProcessingParameterNumber.Type.Double")
)

SOURCE_VECTOR_POLYGON = _pick(
    Qgis, "ProcessingSourceType.VectorPolygon", _old_core("QgsProcessing.SourceType.TypeVectorPolygon")
)
SOURCE_FILE = _pick(Qgis, "ProcessingSourceType.File", _old_core("QgsProcessing.SourceType.TypeFile"))
SOURCE_VECTOR_POINT = _pick(
    Qgis, "ProcessingSourceType.VectorPoint", _old_core("QgsProcessing.SourceType.TypeVectorPoint")
)
SOURCE_VECTOR_ANY = _pick(
    Qgis, "ProcessingSourceType.VectorAnyGeometry", _old_core("QgsProcessing.SourceType.TypeVectorAnyGeometry")
)
SOURCE_RASTER = _pick(Qgis, "ProcessingSourceType.Raster", _old_core("QgsProcessing.SourceType.TypeRaster"))

PARAM_FLAG_ADVANCED = _pick(
    Qgis, "ProcessingParameterFlag.Advanced", _old_core("QgsProcessingParameterDefinition.Flag.FlagAdvanced")
)
PARAM_FLAG_OPTIONAL = _pick(
    Qgis, "ProcessingParameterFlag.Optional", _old_core("QgsProcessingParameterDefinition.Flag.FlagOptional")
)
PARAM_FLAG_HIDDEN = _pick(
    Qgis, "ProcessingParameterFlag.Hidden", _old_core("QgsProcessingParameterDefinition.Flag.FlagHidden")
)

FILE_BEHAVIOR_FILE = _pick(
    Qgis, "ProcessingFileParameterBehavior.File", _old_core("QgsProcessingParameterFile.Behavior.File")
)
FILE_BEHAVIOR_FOLDER = _pick(
    Qgis, "ProcessingFileParameterBehavior.Folder", _old_core("QgsProcessingParameterFile.Behavior.Folder")
)


def has_flag(flags, flag) -> bool:
    """``flag`` set in ``flags`` (QFlags in Qt5 builds, enum.Flag / sip flags in Qt6 builds)."""
    try:
        return bool(flags & flag)
    except TypeError:
        return int(flags) & int(flag) != 0


def add_flag(definition, flag):
    """Set ``flag`` on a parameter definition; returns the definition (for chaining in lists)."""
    definition.setFlags(definition.flags() | flag)
    return definition


# --- layers, geometry, messages, writers -------------------------------------------------------------------
LAYER_RASTER = _pick(Qgis, "LayerType.Raster", _old_core("QgsMapLayerType.RasterLayer"))
LAYER_VECTOR = _pick(Qgis, "LayerType.Vector", _old_core("QgsMapLayerType.VectorLayer"))

WKB_MULTIPOLYGON = _pick(Qgis, "WkbType.MultiPolygon", _old_core("QgsWkbTypes.Type.MultiPolygon"))
WKB_POINT = _pick(Qgis, "WkbType.Point", _old_core("QgsWkbTypes.Type.Point"))

MSG_INFO = Qgis.MessageLevel.Info
MSG_WARNING = Qgis.MessageLevel.Warning
MSG_CRITICAL = Qgis.MessageLevel.Critical
MSG_SUCCESS = Qgis.MessageLevel.Success

LAYOUT_MILLIMETERS = _pick(Qgis, "LayoutUnit.Millimeters", _old_core("QgsUnitTypes.LayoutUnit.LayoutMillimeters"))
LEGEND_HIDDEN = _pick(Qgis, "LegendComponent.Hidden", _old_core("QgsLegendStyle.Style.Hidden"))
EXPORT_SUCCESS = _old_core("QgsLayoutExporter.ExportResult.Success")()

FAST_INSERT = QgsFeatureSink.Flag.FastInsert
WRITER_NO_ERROR = QgsVectorFileWriter.WriterError.NoError


# --- attribute field types: QMetaType from QGIS 3.38 on (the only kind Qt6 has), QVariant before ------------
if QGIS_VERSION_INT >= 33800:
    from qgis.PyQt.QtCore import QMetaType

    FIELD_STRING = QMetaType.Type.QString
    FIELD_INT = QMetaType.Type.Int
    FIELD_LONG = QMetaType.Type.LongLong
    FIELD_DOUBLE = QMetaType.Type.Double
    FIELD_DATE = QMetaType.Type.QDate
else:  # QGIS 3.22 - 3.36: QgsField takes QVariant.Type
    from qgis.PyQt.QtCore import QVariant

    FIELD_STRING = QVariant.Type.String
    FIELD_INT = QVariant.Type.Int
    FIELD_LONG = QVariant.Type.LongLong
    FIELD_DOUBLE = QVariant.Type.Double
    FIELD_DATE = QVariant.Type.Date


# --- Qt classes that moved module ---------------------------------------------------------------------------
try:  # Qt6: QAction lives in QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5: QtWidgets
    from qgis.PyQt.QtWidgets import QAction

__all__ = ["QAction"]


def qt_major() -> int:
    from qgis.PyQt.QtCore import QT_VERSION_STR

    return int(QT_VERSION_STR.split(".")[0])
