"""satclassify:buildpatches - image + labels (+ mask) -> training dataset folder with a spatial split."""

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gdal_raster_source


class BuildPatchesAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "buildpatches"
    REPLACES_FOLDER_PARAM = "OVERWRITE"
    MEMORY_HINT = "use a smaller PATCH_SIZE or SHARD_SIZE, or a smaller image"
    DISPLAY_NAME = "Build training patches"
    GROUP = "Training data"
    GROUP_ID = "trainingdata"
    TAGS = "patches,dataset,training,split,train,validation,test,cross-validation,folds,numpy,deep learning"
    CLASS_OPTIONS = ["From the label raster (category names / colours)", "CLC level 1", "CLC level 2", "CLC level 3"]
    LAYOUT_OPTIONS = [
        "Auto (point labels from Rasterize labels: centred patches; else a grid)",
        "Grid of patches over the raster",
        "One patch centred on each labelled pixel (point labels)",
    ]
    LAYOUTS = ["auto", "grid", "points"]
    HELP = (
        "Cuts an image (e.g. a uint16 Sentinel-2 stack with band names B02...) and a label raster (e.g. the "
        "output of Rasterize CORINE Land Cover or Rasterize labels) into square patches and writes a training "
        "dataset folder: "
        "manifest.json, numpy shards images-&lt;split&gt;-&lt;k&gt;.npy (uint16, N x bands x H x W), "
        "labels-&lt;split&gt;-&lt;k&gt;.npy (uint8, 0 = no label), masks-&lt;split&gt;-&lt;k&gt;.npy "
        "(1 = valid, when a mask "
        "or image nodata exists) and patches.gpkg (one footprint per patch with split, fold, shard, index and "
        "class fractions). The training package reads it directly (numpy memory-mapping).<br>"
        "<b>Mask</b>: optional validity raster, nonzero = valid (the mask of fetchsentinel2); pixels at the "
        "image's nodata value are invalid too; labels of invalid pixels are stored as 0. With MASK_IS_NOISE the "
        "mask's nonzero pixels are the ones dropped instead: give rasterizeclc's MIXED raster as it is to train "
        "only on pure pixels (raise MAX_MASKED to keep patches with many mixed pixels). Labels and mask on "
        "another grid are warped to the image grid (nearest).<br>"
        "<b>Patches</b>: PATCH_SIZE pixels every STRIDE pixels (0 = patch size); never across the raster edge. "
        "A patch is kept with at least MIN_LABELLED labelled pixels and at most MAX_MASKED invalid ones.<br>"
        "<b>Split</b>: spatial blocks of BLOCK_SIZE x BLOCK_SIZE patches go whole to train, val or test "
        "(VAL_FRACTION, TEST_FRACTION of the patches, shuffled with SEED), so validation never shares pixels "
        "with training. K_FOLDS (>= 2) numbers the train blocks for cross-validation (fold field).<br>"
        "<b>Sampling</b>: MAX_PATCHES caps the patch count; CLASS_AWARE then keeps patches with rare classes "
        "first. Class histograms per split are in the log and the manifest.<br>"
        "<b>Point labels</b> (Rasterize labels on a point layer; LAYOUT auto or centred): one patch centred on "
        "each labelled pixel, whose class is the patch's label: a patch-label dataset (task singlelabel, "
        "targets-&lt;split&gt;-&lt;k&gt;.npy, no pixel labels) for a patch classifier (cnn_class). Patches must "
        "lie wholly in the image; a val/test patch sharing pixels with a train patch is dropped.<br>"
        "<b>Multi-label targets</b>: TARGET_FRACTION &gt; 0 also writes a patch-level target per patch "
        "(targets-&lt;split&gt;-&lt;k&gt;.npy, manifest task multilabel): the classes covering at least that "
        "fraction of the patch's labelled pixels, for a multi-label patch classifier (cnn_class) like those "
        "trained on BigEarthNet.<br>"
        "Memory stays flat: the image is read in strips one patch high."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("IMAGE", "Image (uint16 stack)"))
        self.addParameter(QgsProcessingParameterRasterLayer("LABELS", "Label raster (uint8 classes, 0 = no label)"))
        self.addParameter(QgsProcessingParameterRasterLayer("MASK", "Validity mask (nonzero = valid)", optional=True))
        self.addParameter(
            QgsProcessingParameterBoolean(
                "MASK_IS_NOISE",
                "The mask marks pixels to drop (nonzero = noisy, e.g. rasterizeclc's MIXED raster)",
                defaultValue=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("CLASSES", "Class table", options=self.CLASS_OPTIONS, defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "PATCH_SIZE", "Patch size (pixels)", compat.NUMBER_INTEGER, 256, False, 8, 4096
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "STRIDE", "Stride (pixels, 0 = patch size)", compat.NUMBER_INTEGER, 0, False, 0, 4096
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_LABELLED", "Minimum labelled fraction", compat.NUMBER_DOUBLE, 0.5, False, 0.0, 1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MAX_MASKED", "Maximum masked (invalid) fraction", compat.NUMBER_DOUBLE, 0.05, False, 0.0, 1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "BLOCK_SIZE", "Split block size (patches per side)", compat.NUMBER_INTEGER, 4, False, 1, 1000
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "VAL_FRACTION", "Validation fraction", compat.NUMBER_DOUBLE, 0.15, False, 0.0, 0.95
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber("TEST_FRACTION", "Test fraction", compat.NUMBER_DOUBLE, 0.15, False, 0.0, 0.95)
        )
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", compat.NUMBER_INTEGER, 0, False, 0))
        self.addParameter(
            QgsProcessingParameterNumber(
                "K_FOLDS", "Cross-validation folds (0 = none)", compat.NUMBER_INTEGER, 0, False, 0, 100
            )
        )
        adv = [
            QgsProcessingParameterNumber(
                "MAX_PATCHES", "Maximum number of patches (0 = all)", compat.NUMBER_INTEGER, 0, False, 0
            ),
            QgsProcessingParameterBoolean(
                "CLASS_AWARE", "Class-aware sampling (keep rare classes)", defaultValue=False
            ),
            QgsProcessingParameterNumber(
                "TARGET_FRACTION",
                "Patch-level multi-label targets: classes covering at least this fraction of "
                "a patch's labelled pixels (0 = none)",
                compat.NUMBER_DOUBLE,
                0.0,
                False,
                0.0,
                1.0,
            ),
            QgsProcessingParameterEnum("LAYOUT", "Patch layout", options=self.LAYOUT_OPTIONS, defaultValue=0),
            QgsProcessingParameterNumber(
                "SHARD_SIZE", "Patches per shard file", compat.NUMBER_INTEGER, 256, False, 1, 100000
            ),
            QgsProcessingParameterBoolean(
                "OVERWRITE", "Overwrite an existing dataset in the folder", defaultValue=False
            ),
        ]
        self.add_advanced(*adv)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Dataset folder"))
        self.addOutput(QgsProcessingOutputVectorLayer("OUTPUT_FOOTPRINTS", "Patch footprints"))
        self.addOutput(QgsProcessingOutputFile("MANIFEST", "manifest.json"))
        for key, label in (
            ("TRAIN_COUNT", "Train patches"),
            ("VAL_COUNT", "Validation patches"),
            ("TEST_COUNT", "Test patches"),
        ):
            self.addOutput(QgsProcessingOutputNumber(key, label))

    def run_tool(self, parameters, context, feedback):
        import os

        from ..core.labels.patches import build_patches

        image = gdal_raster_source(self, parameters, "IMAGE", context, "image")
        labels = gdal_raster_source(self, parameters, "LABELS", context, "label")
        if not image:
            raise SatClassifyError("no image given (IMAGE)")
        if not labels:
            raise SatClassifyError("no label raster given (LABELS)")
        mask = gdal_raster_source(self, parameters, "MASK", context, "mask")
        folder = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        result = build_patches(
            image,
            labels,
            folder,
            mask=mask,
            patch_size=self.parameterAsInt(parameters, "PATCH_SIZE", context),
            stride=self.parameterAsInt(parameters, "STRIDE", context),
            min_labelled=self.parameterAsDouble(parameters, "MIN_LABELLED", context),
            max_masked=self.parameterAsDouble(parameters, "MAX_MASKED", context),
            block_size=self.parameterAsInt(parameters, "BLOCK_SIZE", context),
            val_fraction=self.parameterAsDouble(parameters, "VAL_FRACTION", context),
            test_fraction=self.parameterAsDouble(parameters, "TEST_FRACTION", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            k_folds=self.parameterAsInt(parameters, "K_FOLDS", context),
            clc_level=self.parameterAsEnum(parameters, "CLASSES", context),
            max_patches=self.parameterAsInt(parameters, "MAX_PATCHES", context),
            class_aware=self.parameterAsBool(parameters, "CLASS_AWARE", context),
            shard_size=self.parameterAsInt(parameters, "SHARD_SIZE", context),
            target_fraction=self.parameterAsDouble(parameters, "TARGET_FRACTION", context),
            mask_is_noise=self.parameterAsBool(parameters, "MASK_IS_NOISE", context),
            layout=self.LAYOUTS[self.parameterAsEnum(parameters, "LAYOUT", context)],
            overwrite=self.parameterAsBool(parameters, "OVERWRITE", context),
            monitor=self.monitor(feedback),
        )
        footprints = result.footprints + "|layername=patches"
        if context.project() is not None:
            context.addLayerToLoadOnCompletion(
                footprints, QgsProcessingContext.LayerDetails("patches", context.project(), "OUTPUT_FOOTPRINTS")
            )
        return {
            "OUTPUT_FOLDER": result.folder,
            "OUTPUT_FOOTPRINTS": footprints,
            "MANIFEST": os.path.join(result.folder, "manifest.json"),
            "TRAIN_COUNT": result.counts["train"],
            "VAL_COUNT": result.counts["val"],
            "TEST_COUNT": result.counts["test"],
        }
