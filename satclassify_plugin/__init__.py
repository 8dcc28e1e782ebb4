"""SatClassify QGIS plugin: Sentinel-2 + CORINE Land Cover classification tools."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    from .plugin import SatClassifyPlugin

    return SatClassifyPlugin(iface)
