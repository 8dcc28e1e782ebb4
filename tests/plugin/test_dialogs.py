"""Every algorithm's toolbox dialog, batch dialog and modeler parameters dialog can be built."""
import pytest
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

from satclassify_plugin.algorithms import algorithm_classes

ALG_IDS = [f"satclassify:{cls.ALGORITHM_ID}" for cls in algorithm_classes()]


def test_there_are_algorithms_to_check():
    assert ALG_IDS, "the provider offers no algorithm"


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_toolbox_dialog(provider, alg_id):
    import processing

    dlg = processing.createAlgorithmDialog(alg_id, {})
    assert dlg is not None
    assert dlg.algorithm().id() == alg_id
    dlg.close()


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_batch_dialog(provider, alg_id):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    dlg = BatchAlgorithmDialog(alg)
    assert dlg.mainWidget() is not None
    dlg.close()


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_modeler_parameters_dialog(provider, alg_id):
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    model = QgsProcessingModelAlgorithm("test", "test")
    dlg = ModelerParametersDialog(alg, model)
    child = dlg.createAlgorithm()
    assert child is not None and child.algorithmId() == alg_id
    dlg.close()


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_help_and_metadata(provider, alg_id):
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    assert alg.displayName() and alg.group() and len(alg.shortHelpString()) > 40
    assert alg.parameterDefinitions(), f"{alg_id} has no parameters"
