"""Every algorithm's toolbox dialog, batch dialog and modeler parameters dialog can be built."""

import pytest
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

from satclassify_plugin.algorithms import algorithm_classes

ALG_IDS = [f"satclassify:{cls.ALGORITHM_ID}" for cls in algorithm_classes()]


def test_there_are_algorithms_to_check():
    assert ALG_IDS, "the provider offers no algorithm"


def dispose(dlg, alg=None):
    """Close and delete the dialog now, while ``alg`` (which its widget wrappers point to) is still alive: a
    dialog left alive after its algorithm was garbage-collected crashes QGIS 3.40+ at the next layer added to the
    project (a field parameter's wrapper asks the dead algorithm for its id)."""
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    dlg.close()
    dlg.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    del alg


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_toolbox_dialog(provider, alg_id):
    import processing

    dlg = processing.createAlgorithmDialog(alg_id, {})
    assert dlg is not None
    assert dlg.algorithm().id() == alg_id
    dispose(dlg)


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_batch_dialog(provider, alg_id):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    dlg = BatchAlgorithmDialog(alg)
    assert dlg.mainWidget() is not None
    dispose(dlg, alg)


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_modeler_parameters_dialog(provider, alg_id):
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    model = QgsProcessingModelAlgorithm("test", "test")
    dlg = ModelerParametersDialog(alg, model)
    child = dlg.createAlgorithm()
    assert child is not None and child.algorithmId() == alg_id
    dispose(dlg, alg)


@pytest.mark.parametrize("alg_id", ALG_IDS)
def test_help_and_metadata(provider, alg_id):
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    assert alg.displayName() and alg.group() and len(alg.shortHelpString()) > 40
    assert alg.parameterDefinitions(), f"{alg_id} has no parameters"
