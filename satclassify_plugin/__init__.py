"""SatClassify QGIS plugin: Sentinel-2 + CORINE Land Cover classification tools."""


def classFactory(iface):
    from .plugin import SatClassifyPlugin

    return SatClassifyPlugin(iface)
