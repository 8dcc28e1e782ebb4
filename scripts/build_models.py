#!/usr/bin/env python3
"""(Re)generate the Processing models shipped in satclassify_plugin/resources/models.

The .model3 files are built through QGIS's model API (QgsProcessingModelAlgorithm), not written by hand,
so they always match the tools' parameter names. Run after changing a tool's parameters:

    .venv-qgis/bin/python scripts/build_models.py          (QT_QPA_PLATFORM=offscreen is set for you)
    .venv-qgis/bin/python scripts/build_models.py train_and_map_model    (only the models named)

Models:
  satclassify_training_dataset.model3  "Sentinel-2 + CLC -> training dataset"
        rasterizeclc (majority rule, on the image grid) -> buildpatches
  satclassify_training_dataset_labels.model3  "Sentinel-2 + own labels -> training dataset"
        rasterizelabels (majority rule, on the image grid; a class table or the field's codes) -> buildpatches
        (polygons: pixel labels; points: one patch centred on each point, patch labels)
  satclassify_classify_aoi.model3      "Classify Sentinel-2 AOI with model"
        fetchsentinel2 -> classify -> rasterizeclc (reference on the fetched grid) -> assessaccuracy;
        classify -> generalize (MMU) -> map + polygons
  satclassify_sampling_design.model3   "Classify -> reference sample design"
        classify -> samplingdesign (stratified random reference points to label)
  satclassify_change_two_dates.model3  "Land-cover change between two dates"
        classify (date 1), classify (date 2, with confidence) -> landcoverchange
  satclassify_train_and_map.model3     "Sentinel-2 + CLC -> trained model -> map"
        rasterizeclc -> buildpatches -> trainmodel (training environment) -> classify -> assessaccuracy

Each run writes every model again, and Qt orders the XML attributes differently from run to run: a model whose
steps did not change differs only in that order. Commit only the models you meant to change.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "satclassify_plugin", "resources", "models")
GROUP = "SatClassify"


def _qgis():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, ROOT)
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from satclassify_plugin.provider import SatClassifyProvider

    prov = SatClassifyProvider()
    QgsApplication.processingRegistry().addProvider(prov)
    return app, prov


class ModelBuilder:
    """Small helper around QgsProcessingModelAlgorithm: inputs, steps, outputs, laid out left to right."""

    def __init__(self, name, help_text):
        from qgis.core import QgsProcessingModelAlgorithm

        self.m = QgsProcessingModelAlgorithm(name, GROUP, GROUP)
        self.m.setHelpContent({"ALG_DESC": help_text, "ALG_CREATOR": "SatClassify", "ALG_VERSION": "1"})
        self.n_inputs = 0
        self.n_steps = 0

    def input(self, definition, description=None):
        from qgis.core import QgsProcessingModelParameter
        from qgis.PyQt.QtCore import QPointF

        comp = QgsProcessingModelParameter(definition.name())
        comp.setDescription(description or definition.description())
        comp.setPosition(QPointF(120 + 220 * (self.n_inputs % 4), 60 + 70 * (self.n_inputs // 4)))
        self.n_inputs += 1
        self.m.addModelParameter(definition, comp)
        return definition.name()

    def step(self, alg_id, description, params, outputs=None):
        """params: name -> ("model", input name) | ("child", child id, output) | ("value", static value)."""
        from qgis.core import QgsApplication, QgsProcessingModelChildAlgorithm, QgsProcessingModelOutput
        from qgis.core import QgsProcessingModelChildParameterSource as Src
        from qgis.PyQt.QtCore import QPointF

        if QgsApplication.processingRegistry().algorithmById(alg_id) is None:
            raise SystemExit(f"{alg_id} is not registered: cannot build a model step on it")
        child = QgsProcessingModelChildAlgorithm(alg_id)
        child.generateChildId(self.m)
        child.setDescription(description)
        child.setPosition(QPointF(200 + 260 * self.n_steps, 260 + 60 * (self.n_steps % 2)))
        self.n_steps += 1
        for name, src in params.items():
            kind = src[0]
            if kind == "model":
                s = Src.fromModelParameter(src[1])
            elif kind == "child":
                s = Src.fromChildOutput(src[1], src[2])
            elif kind == "value":
                s = Src.fromStaticValue(src[1])
            else:
                raise ValueError(kind)
            child.addParameterSources(name, [s])
        outs = {}
        for child_output, (out_name, out_description) in (outputs or {}).items():
            o = QgsProcessingModelOutput(out_name, out_description)
            o.setChildOutputName(child_output)
            o.setChildId(child.childId())
            o.setDescription(out_description)
            o.setPosition(QPointF(child.position().x() + 40, child.position().y() + 90))
            outs[out_name] = o
        child.setModelOutputs(outs)
        self.m.addChildAlgorithm(child)
        return child.childId()

    def save(self, filename):
        self.m.updateDestinationParameters()
        path = os.path.join(OUT, filename)
        if not self.m.toFile(path + ".part"):
            raise SystemExit(f"could not write {path}")
        os.replace(path + ".part", path)
        print(path)
        return path


def training_dataset_model():
    from qgis.core import (
        QgsProcessingParameterEnum,
        QgsProcessingParameterMapLayer,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    from satclassify_plugin import compat

    b = ModelBuilder(
        "Sentinel-2 + CLC -> training dataset",
        "Burns CORINE Land Cover (majority rule) onto the grid of a Sentinel-2 stack and cuts image + labels "
        "into a training dataset folder (manifest.json + shards) for the training package "
        "(python -m training train --data FOLDER). Optionally a validity MASK (from fetchsentinel2 / "
        "importsafe) drops cloudy patches.",
    )
    image = b.input(QgsProcessingParameterRasterLayer("IMAGE", "Sentinel-2 stack (uint16, bands B02...)"))
    clc = b.input(
        QgsProcessingParameterMapLayer(
            "CLC", "CORINE Land Cover (polygons or raster)", types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_RASTER]
        )
    )
    level = b.input(
        QgsProcessingParameterEnum(
            "LEVEL",
            "CLC level",
            options=["Level 1 (5 classes)", "Level 2 (15 classes)", "Level 3 (44 classes)"],
            defaultValue=1,
        )
    )
    mask = b.input(
        QgsProcessingParameterRasterLayer("MASK", "Validity mask (optional, nonzero = valid)", optional=True)
    )
    patch = b.input(
        QgsProcessingParameterNumber("PATCH_SIZE", "Patch size (pixels)", compat.NUMBER_INTEGER, 256, False, 8, 4096)
    )
    labels = b.step(
        "satclassify:rasterizeclc",
        "Rasterize CLC on the image grid",
        {"INPUT": ("model", clc), "REFERENCE": ("model", image), "LEVEL": ("model", level), "RULE": ("value", 2)},
        {"OUTPUT": ("labels", "CLC labels")},
    )
    b.step(
        "satclassify:buildpatches",
        "Build training patches",
        {
            "IMAGE": ("model", image),
            "LABELS": ("child", labels, "OUTPUT"),
            "MASK": ("model", mask),
            "PATCH_SIZE": ("model", patch),
            "STRIDE": ("value", 0),
            "CLASSES": ("value", 0),
            "OVERWRITE": ("value", True),
        },
        {"OUTPUT_FOLDER": ("dataset", "Training dataset folder")},
    )
    return b.save("satclassify_training_dataset.model3")


def own_labels_dataset_model():
    from qgis.core import (
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterMapLayer,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    from satclassify_plugin import compat

    b = ModelBuilder(
        "Sentinel-2 + own labels -> training dataset",
        "Burns your own labels (crop-type parcels of an LPIS, field-survey polygons or points: any layer with a "
        "class field of text or numbers) onto the grid of a Sentinel-2 stack (majority rule) with a class table "
        "(CSV or table layer: code,value,name,colour) or the field's own codes, and cuts image + labels into a "
        "training dataset folder for the training package (python -m training train --data FOLDER). Polygons give "
        "pixel labels (U-Net, U-TAE, CNN-dual); points give one patch centred on each point with its class (a "
        "patch classifier, cnn_class). Codes missing from the table and NULL codes are left as no label and "
        "reported in the log. Optionally a validity MASK (from fetchsentinel2 / importsafe) drops cloudy patches.",
    )
    image = b.input(QgsProcessingParameterRasterLayer("IMAGE", "Sentinel-2 stack (uint16, bands B02...)"))
    labels = b.input(
        QgsProcessingParameterFeatureSource(
            "LABELS", "Label polygons or points", types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_VECTOR_POINT]
        )
    )
    field = b.input(
        QgsProcessingParameterField("FIELD", "Class field (text or numbers)", parentLayerParameterName="LABELS")
    )
    table = b.input(
        QgsProcessingParameterMapLayer(
            "CLASS_TABLE", "Class table (optional; CSV or table layer: code[,value,name,colour])", optional=True
        )
    )
    mask = b.input(
        QgsProcessingParameterRasterLayer("MASK", "Validity mask (optional, nonzero = valid)", optional=True)
    )
    patch = b.input(
        QgsProcessingParameterNumber("PATCH_SIZE", "Patch size (pixels)", compat.NUMBER_INTEGER, 64, False, 8, 4096)
    )
    folds = b.input(
        QgsProcessingParameterNumber(
            "K_FOLDS", "Cross-validation folds (0 = none)", compat.NUMBER_INTEGER, 0, False, 0, 100
        )
    )
    raster_labels = b.step(
        "satclassify:rasterizelabels",
        "Rasterize the labels on the image grid",
        {
            "INPUT": ("model", labels),
            "FIELD": ("model", field),
            "CLASS_TABLE": ("model", table),
            "REFERENCE": ("model", image),
            "RULE": ("value", 2),
        },
        {"OUTPUT": ("labels", "Label raster")},
    )
    b.step(
        "satclassify:buildpatches",
        "Build training patches",
        {
            "IMAGE": ("model", image),
            "LABELS": ("child", raster_labels, "OUTPUT"),
            "MASK": ("model", mask),
            "PATCH_SIZE": ("model", patch),
            "K_FOLDS": ("model", folds),
            "STRIDE": ("value", 0),
            "CLASSES": ("value", 0),
            "LAYOUT": ("value", 0),
            "OVERWRITE": ("value", True),
        },
        {"OUTPUT_FOLDER": ("dataset", "Training dataset folder")},
    )
    return b.save("satclassify_training_dataset_labels.model3")


def classify_aoi_model():
    from qgis.core import (
        QgsApplication,
        QgsProcessingParameterEnum,
        QgsProcessingParameterFile,
        QgsProcessingParameterMapLayer,
        QgsProcessingParameterNumber,
    )

    from satclassify_plugin import compat

    fetch = QgsApplication.processingRegistry().algorithmById("satclassify:fetchsentinel2")
    if fetch is None:
        print("satclassify:fetchsentinel2 is not available yet: skipping the AOI model")
        return None
    b = ModelBuilder(
        "Classify Sentinel-2 AOI with model",
        "Fetches a Sentinel-2 L2A stack for an area and period (best date: least cloud, largest cover), "
        "classifies it with an ONNX model exported by the training package, rasterizes CORINE Land Cover "
        "on the same grid as the reference and writes the accuracy report (confusion matrix, metrics, HTML); "
        "the classes are also generalised to a minimum mapping unit (MMU, ha) as a map and its polygons.",
    )
    # Inputs copied from the tools so types, defaults and enum options stay the same.
    fetch_inputs = {}
    for name in ("EXTENT", "START", "END", "MAX_CLOUD", "SOURCE", "URL", "AUTHCFG"):
        d = fetch.parameterDefinition(name)
        if d is None:
            continue
        d = d.clone()
        if name in ("URL", "AUTHCFG"):
            d.setFlags(d.flags() | compat.PARAM_FLAG_ADVANCED)
        fetch_inputs[name] = b.input(d)
    model_file = b.input(
        QgsProcessingParameterFile("MODEL", "Model (.onnx from the training package)", extension="onnx")
    )
    clc = b.input(
        QgsProcessingParameterMapLayer(
            "CLC", "CORINE Land Cover (polygons or raster)", types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_RASTER]
        )
    )
    level = b.input(
        QgsProcessingParameterEnum(
            "LEVEL",
            "CLC level of the model's classes",
            options=["Level 1 (5 classes)", "Level 2 (15 classes)", "Level 3 (44 classes)"],
            defaultValue=1,
        )
    )
    mmu = b.input(
        QgsProcessingParameterNumber(
            "MMU", "Minimum mapping unit of the map (ha; CLC: 25)", compat.NUMBER_DOUBLE, 25.0, False, 0.0
        )
    )
    f = b.step(
        "satclassify:fetchsentinel2",
        "Fetch Sentinel-2 L2A",
        {k: ("model", v) for k, v in fetch_inputs.items()},
        {"OUTPUT": ("s2_stack", "Sentinel-2 stack"), "MASK": ("s2_mask", "Validity mask")},
    )
    c = b.step(
        "satclassify:classify",
        "Classify with the model",
        {"INPUT": ("child", f, "OUTPUT"), "MODEL": ("model", model_file)},
        {"OUTPUT": ("classes", "Land-cover classes")},
    )
    r = b.step(
        "satclassify:rasterizeclc",
        "Rasterize CLC reference",
        {"INPUT": ("model", clc), "REFERENCE": ("child", f, "OUTPUT"), "LEVEL": ("model", level), "RULE": ("value", 2)},
        {"OUTPUT": ("reference", "CLC reference")},
    )
    b.step(
        "satclassify:assessaccuracy",
        "Assess accuracy",
        {"CLASSIFIED": ("child", c, "OUTPUT"), "REFERENCE": ("child", r, "OUTPUT"), "MASK": ("child", f, "MASK")},
        {"OUTPUT_REPORT": ("report", "Accuracy report (HTML)"), "OUTPUT_METRICS": ("metrics", "Metrics (JSON)")},
    )
    b.step(
        "satclassify:generalize",
        "Generalise to the minimum mapping unit",
        {"INPUT": ("child", c, "OUTPUT"), "MMU": ("model", mmu), "CONNECTIVITY": ("value", 0)},
        {"OUTPUT": ("map", "Generalised land-cover map"), "POLYGONS": ("map_polygons", "Land-cover polygons")},
    )
    return b.save("satclassify_classify_aoi.model3")


def _param_copy(alg_id, name, description=None, advanced=False):
    """A tool's own parameter definition (type, default, range, options), cloned for a model input."""
    from qgis.core import QgsApplication

    from satclassify_plugin import compat

    d = QgsApplication.processingRegistry().algorithmById(alg_id).parameterDefinition(name).clone()
    if description:
        d.setDescription(description)
    if advanced:
        d.setFlags(d.flags() | compat.PARAM_FLAG_ADVANCED)
    return d


def sampling_design_model():
    from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterRasterLayer

    b = ModelBuilder(
        "Classify -> reference sample design",
        "Classifies a raster with an ONNX model and draws a stratified random sample of reference points from "
        "the class map (strata = the classes; sample size from a target standard error of overall accuracy and "
        "the expected user's accuracies, with a minimum per class; Olofsson et al. 2014). Fill in the points' "
        "'reference' field (e.g. by photo-interpretation), then run Assess classification accuracy with "
        "REFERENCE_POINTS for accuracies and error-adjusted areas with 95 % confidence intervals.",
    )
    image = b.input(QgsProcessingParameterRasterLayer("IMAGE", "Image to classify (e.g. a Sentinel-2 stack)"))
    model_file = b.input(
        QgsProcessingParameterFile("MODEL", "Model (.onnx from the training package)", extension="onnx")
    )
    alg = "satclassify:samplingdesign"
    inputs = {
        name: b.input(_param_copy(alg, name, advanced=adv))
        for name, adv in (
            ("TARGET_SE", False),
            ("EXPECTED_UA", False),
            ("MIN_PER_CLASS", False),
            ("SEED", False),
            ("EXPECTED_UA_TABLE", True),
        )
    }
    c = b.step(
        "satclassify:classify",
        "Classify with the model",
        {"INPUT": ("model", image), "MODEL": ("model", model_file)},
        {"OUTPUT": ("classes", "Land-cover classes")},
    )
    b.step(
        alg,
        "Stratified sampling design",
        {
            "INPUT": ("child", c, "OUTPUT"),
            "METHOD": ("value", 0),
            "ALLOCATION": ("value", 0),
            **{k: ("model", v) for k, v in inputs.items()},
        },
        {
            "OUTPUT": ("sample_points", "Reference sample points (fill in 'reference')"),
            "OUTPUT_STRATA": ("strata", "Strata and design (JSON)"),
        },
    )
    return b.save("satclassify_sampling_design.model3")


def change_two_dates_model():
    from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterRasterLayer

    b = ModelBuilder(
        "Land-cover change between two dates",
        "Classifies two images of the same area (two dates) with one ONNX model and compares the class maps: "
        "from-to raster, change matrix in hectares, change polygons with a minimum mapping unit (MMU, default "
        "5 ha as the CLC change layers) and map update candidates where the second date's model is confident "
        "(CONFIDENCE >= THRESHOLD %) and disagrees with the first map.",
    )
    img1 = b.input(QgsProcessingParameterRasterLayer("IMAGE_1", "Image of the first (earlier) date"))
    img2 = b.input(QgsProcessingParameterRasterLayer("IMAGE_2", "Image of the second (later) date"))
    model_file = b.input(
        QgsProcessingParameterFile("MODEL", "Model (.onnx from the training package)", extension="onnx")
    )
    alg = "satclassify:landcoverchange"
    mmu = b.input(_param_copy(alg, "MMU"))
    threshold = b.input(_param_copy(alg, "THRESHOLD"))
    c1 = b.step(
        "satclassify:classify",
        "Classify the first date",
        {"INPUT": ("model", img1), "MODEL": ("model", model_file)},
        {"OUTPUT": ("classes_1", "Land-cover classes, first date")},
    )
    c2 = b.step(
        "satclassify:classify",
        "Classify the second date",
        {"INPUT": ("model", img2), "MODEL": ("model", model_file)},
        {
            "OUTPUT": ("classes_2", "Land-cover classes, second date"),
            "CONFIDENCE": ("confidence_2", "Confidence, second date (%)"),
        },
    )
    b.step(
        alg,
        "Land-cover change",
        {
            "FIRST": ("child", c1, "OUTPUT"),
            "SECOND": ("child", c2, "OUTPUT"),
            "CONFIDENCE": ("child", c2, "CONFIDENCE"),
            "MMU": ("model", mmu),
            "THRESHOLD": ("model", threshold),
        },
        {
            "OUTPUT": ("from_to", "From-to change raster"),
            "OUTPUT_MATRIX": ("change_matrix", "Change matrix (ha)"),
            "OUTPUT_JSON": ("change_summary", "Change summary (JSON)"),
            "OUTPUT_POLYGONS": ("change_polygons", "Change polygons"),
            "OUTPUT_CANDIDATES": ("update_candidates", "Map update candidates"),
        },
    )
    return b.save("satclassify_change_two_dates.model3")


def train_and_map_model():
    from qgis.core import (
        QgsProcessingParameterEnum,
        QgsProcessingParameterMapLayer,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    from satclassify_plugin import compat

    b = ModelBuilder(
        "Sentinel-2 + CLC -> trained model -> map",
        "The whole chain in one run: burns CORINE Land Cover (majority rule) onto the grid of a Sentinel-2 stack, "
        "cuts image + labels into a training dataset (spatial train/val/test split), trains a model in the "
        "training environment (Train model: set it up once with Plugins > SatClassify > Set up training "
        "environment...), exports it to ONNX, classifies the whole stack with it and assesses the map against the "
        "rasterized CLC (confusion matrix, metrics, HTML report). The accuracy covers the whole scene, training "
        "areas included (an optimistic figure: the training report's validation figures, and a reference sample "
        "design, give independent ones).",
    )
    image = b.input(QgsProcessingParameterRasterLayer("IMAGE", "Sentinel-2 stack (uint16, bands B02...)"))
    clc = b.input(
        QgsProcessingParameterMapLayer(
            "CLC", "CORINE Land Cover (polygons or raster)", types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_RASTER]
        )
    )
    level = b.input(
        QgsProcessingParameterEnum(
            "LEVEL",
            "CLC level",
            options=["Level 1 (5 classes)", "Level 2 (15 classes)", "Level 3 (44 classes)"],
            defaultValue=1,
        )
    )
    patch = b.input(
        QgsProcessingParameterNumber("PATCH_SIZE", "Patch size (pixels)", compat.NUMBER_INTEGER, 64, False, 8, 4096)
    )
    alg = "satclassify:trainmodel"
    train_inputs = {
        name: b.input(_param_copy(alg, name, advanced=adv))
        for name, adv in (
            ("ARCHITECTURE", False),
            ("EPOCHS", False),
            ("DEVICE", False),
            ("BATCH_SIZE", True),
            ("LR", True),
            ("CONFIG", True),
            ("SEED", True),
            ("MAX_STEPS", True),
        )
    }
    labels = b.step(
        "satclassify:rasterizeclc",
        "Rasterize CLC on the image grid",
        {"INPUT": ("model", clc), "REFERENCE": ("model", image), "LEVEL": ("model", level), "RULE": ("value", 2)},
        {"OUTPUT": ("labels", "CLC labels")},
    )
    patches = b.step(
        "satclassify:buildpatches",
        "Build training patches",
        {
            "IMAGE": ("model", image),
            "LABELS": ("child", labels, "OUTPUT"),
            "PATCH_SIZE": ("model", patch),
            "STRIDE": ("value", 0),
            "CLASSES": ("value", 0),
            "OVERWRITE": ("value", True),
        },
        {"OUTPUT_FOLDER": ("dataset", "Training dataset folder")},
    )
    trained = b.step(
        alg,
        "Train model",
        {
            "INPUT": ("child", patches, "OUTPUT_FOLDER"),
            "AUGMENT": ("value", True),
            "CLASS_WEIGHTS": ("value", False),
            **{k: ("model", v) for k, v in train_inputs.items()},
        },
        {
            "OUTPUT": ("model", "Trained model (ONNX)"),
            "REPORT": ("training_report", "Training report"),
            "CHECKPOINTS": ("checkpoints", "Checkpoint folder"),
        },
    )
    c = b.step(
        "satclassify:classify",
        "Classify with the trained model",
        {"INPUT": ("model", image), "MODEL": ("child", trained, "OUTPUT")},
        {"OUTPUT": ("classes", "Land-cover classes")},
    )
    b.step(
        "satclassify:assessaccuracy",
        "Assess accuracy against CLC",
        {"CLASSIFIED": ("child", c, "OUTPUT"), "REFERENCE": ("child", labels, "OUTPUT")},
        {
            "OUTPUT_REPORT": ("accuracy_report", "Accuracy report (HTML)"),
            "OUTPUT_METRICS": ("metrics", "Metrics (JSON)"),
        },
    )
    return b.save("satclassify_train_and_map.model3")


def main():
    app, _prov = _qgis()
    os.makedirs(OUT, exist_ok=True)
    only = sys.argv[1:]
    for build in (
        training_dataset_model,
        own_labels_dataset_model,
        classify_aoi_model,
        sampling_design_model,
        change_two_dates_model,
        train_and_map_model,
    ):
        if not only or build.__name__ in only:
            build()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
