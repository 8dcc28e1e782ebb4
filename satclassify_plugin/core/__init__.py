"""The numeric core of SatClassify: plain Python + numpy + GDAL, never qgis, PyQt or torch.

Where things live (dependencies point one way: contract <- raster <- the domain packages, which do not
import each other; tests/core/test_guardrail.py checks every import):

* ``contract/``  what the training package imports too: errors, feedback (Canceled, Monitor; progress 0-1),
  the class record (``classes.ClassRecord``), CLC tables, model card, dataset folder format, metrics,
  output-path guard. No osgeo.
* ``raster``     GDAL raster I/O shared by the tools: open, create (all metadata before pixels), atomic outputs.
* ``net/``       sensor-neutral HTTP: the client, deadlines and stall watchdog, the one retry mechanism, the proxy.
* ``catalog/``   sensor-neutral catalogue clients on ``net``: STAC, CDSE OData, DHuS (contract <- net <- catalog <- s2).
* ``s2/``        Sentinel-2: product conventions (``products``), search sources (``sources``), stacks.
* ``labels/``    CLC -> label rasters (``rasterize``) and training patches (``plan`` pure, ``patches``).
* ``classify/``  tiling (pure planning), onnxruntime sessions (``inference``), the streamed pipeline
  (``plan_classify`` -> ``ClassifyPlan`` -> ``run_plan``).
* ``accuracy/``  tables and transforms (``tables``, pure), the streamed comparison (``assess``).
"""
