"""The numeric core of SatClassify: plain Python + numpy + GDAL, never qgis, PyQt or torch.

Where things live (dependencies point one way: contract <- raster, crs <- the domain packages, which do not
import each other; tests/core/test_guardrail.py checks every import):

* ``contract/``  what the training package imports too: errors, feedback (Canceled, Monitor; progress 0-1),
  the class record (``classes.ClassRecord``), CLC tables, model card, dataset folder format, metrics,
  output-path guard. No osgeo.
* ``raster``     GDAL raster I/O shared by the tools: open, create (all metadata before pixels), atomic outputs.
* ``crs``        ground truths of a grid (osr): north-up check, pixel size and area in ground metres.
* ``net/``       sensor-neutral HTTP: the client, deadlines and stall watchdog, the one retry mechanism, the proxy.
* ``catalog/``   sensor-neutral catalogue clients on ``net``: STAC, CDSE OData, DHuS (contract <- net <- catalog <- s2).
* ``s2/``        Sentinel-2: product conventions (``products``), search sources (``sources``), stacks, cloud masks.
* ``labels/``    CLC -> label rasters (``rasterize``) and training patches (``plan`` pure, ``patches``).
* ``classify/``  a run's settings (``options.ClassifyOptions``, pure), tiling (pure planning), onnxruntime sessions
  (``inference``), the streamed pipeline (``plan_classify`` -> ``ClassifyPlan`` -> ``run_plan``; ``classify``
  returns what it wrote and the pixels per class), patch classification (``patches``).
* ``accuracy/``  tables and transforms (``tables``, pure), the streamed comparison (``assess``), reference points
  (``points``), sampling design (``sampling``), land-cover change (``change``).
* ``maps/``      class maps for people: legends of the classes present with their area (``legend``), generalisation
  to a minimum mapping unit and polygons (``generalize``).

Conventions: a long call takes ``monitor=`` (``contract.feedback.Monitor``: progress 0-1, messages, cancel), never
loose ``progress`` / ``log`` / ``is_canceled`` callables; a call with many user choices takes one frozen options
dataclass checked when made (``ClassifyOptions``, ``SamplingOptions``, ``contract.dataset.DatasetSpec``,
``labels.plan.PatchSettings``, ``accuracy.plan.MapOptions`` / ``ChangeOptions``), and the Processing tool takes its
parameter defaults from it.
"""
