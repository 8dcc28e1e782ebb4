"""Plugin entry: registers the Processing provider and the layer right-click actions."""

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon

from . import compat
from .install import deps
from .provider import ICON, SatClassifyProvider

#: (label, layer type, algorithm id, parameter that receives the clicked layer)
LAYER_ACTIONS = (
    ("Classify with SatClassify model...", compat.LAYER_RASTER, "satclassify:classify", "INPUT"),
    ("Classify patches with SatClassify model...", compat.LAYER_RASTER, "satclassify:classifypatches", "INPUT"),
    ("Rasterize CORINE Land Cover...", compat.LAYER_VECTOR, "satclassify:rasterizeclc", "INPUT"),
    ("Rasterize labels (own classes)...", compat.LAYER_VECTOR, "satclassify:rasterizelabels", "INPUT"),
)
MENU = "SatClassify"
#: (label, band combination of core.s2.style.COMBINATIONS): one click draws a Sentinel-2 stack that way (any stack
#: with band names, also one opened from disk), as a named style of the layer (Layers panel > Styles)
STYLE_ACTIONS = (
    ("Sentinel-2 natural colour (B04/B03/B02)", "natural colour"),
    ("Sentinel-2 colour infrared (B08/B04/B03)", "colour infrared"),
)


class SatClassifyPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.layer_actions = []
        self.style_actions = []
        self.menu_actions = []
        self.deps_task = None
        self.training_env_task = None
        self.models_dialog = None
        self.training_env_dialog = None
        self.diagnostics_dialog = None
        # Packages installed by "Install Python dependencies" (onnxruntime, pystac-client, ...).
        deps.activate(self.deps_folder())

    @staticmethod
    def deps_folder():
        return deps.deps_dir(QgsApplication.qgisSettingsDirPath())

    # Processing ---------------------------------------------------------------------------
    def initProcessing(self):
        if self.provider is None:
            self.provider = SatClassifyProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
            self.install_models()

    @staticmethod
    def models_folder():
        """The user's Processing models folder (Processing options > Models, first entry)."""
        import os

        from qgis.core import QgsSettings

        default = os.path.join(QgsApplication.qgisSettingsDirPath(), "processing", "models")
        folders = QgsSettings().value("Processing/Configuration/MODELS_FOLDER", default) or default
        return str(folders).split(";")[0] or default

    def install_models(self):
        """Copy the shipped .model3 files into the user's models folder so they show in the toolbox."""
        from qgis.core import QgsMessageLog

        from .install.shipped_models import install_models

        def log(msg):
            QgsMessageLog.logMessage(msg, "SatClassify", compat.MSG_INFO)

        try:
            written = install_models(self.models_folder(), log=log)
        except OSError as e:  # a read-only profile must not stop the plugin
            log(f"could not install the SatClassify processing models: {e}")
            return []
        model_provider = QgsApplication.processingRegistry().providerById("model")
        if written and model_provider is not None:
            model_provider.refreshAlgorithms()
        return written

    def initGui(self):
        self.initProcessing()
        registry = QgsApplication.processingRegistry()
        for label, layer_type, alg_id, param in LAYER_ACTIONS:
            if registry.algorithmById(alg_id) is None:
                continue
            action = compat.QAction(QIcon(ICON), label, self.iface.mainWindow())
            action.triggered.connect(lambda _checked=False, a=alg_id, p=param: self.open_dialog_for_layer(a, p))
            self.iface.addCustomActionForLayerType(action, MENU, layer_type, True)
            self.layer_actions.append((action, alg_id, param))
        for label, combination in STYLE_ACTIONS:
            action = compat.QAction(QIcon(ICON), label, self.iface.mainWindow())
            action.triggered.connect(lambda _checked=False, c=combination: self.style_active_layer(c))
            self.iface.addCustomActionForLayerType(action, MENU, compat.LAYER_RASTER, True)
            self.style_actions.append((action, combination))
        action = compat.QAction(QIcon(ICON), "Install Python dependencies...", self.iface.mainWindow())
        action.triggered.connect(lambda _checked=False: self.start_dependency_install())
        self.iface.addPluginToMenu(MENU, action)
        self.menu_actions.append(action)
        action = compat.QAction(QIcon(ICON), "Manage models...", self.iface.mainWindow())
        action.triggered.connect(lambda _checked=False: self.open_models_dialog())
        self.iface.addPluginToMenu(MENU, action)
        self.menu_actions.append(action)
        action = compat.QAction(QIcon(ICON), "Set up training environment...", self.iface.mainWindow())
        action.triggered.connect(lambda _checked=False: self.open_training_env_dialog())
        self.iface.addPluginToMenu(MENU, action)
        self.menu_actions.append(action)
        action = compat.QAction(QIcon(ICON), "Diagnostics...", self.iface.mainWindow())
        action.triggered.connect(lambda _checked=False: self.open_diagnostics())
        self.iface.addPluginToMenu(MENU, action)
        self.menu_actions.append(action)

    def unload(self):
        for name in ("models_dialog", "training_env_dialog", "diagnostics_dialog"):
            if getattr(self, name) is not None:
                getattr(self, name).close()
                setattr(self, name, None)
        for action in self.menu_actions:
            self.iface.removePluginMenu(MENU, action)
        self.menu_actions = []
        for action, _, _ in self.layer_actions:
            self.iface.removeCustomActionForLayerType(action)
        self.layer_actions = []
        for action, _ in self.style_actions:
            self.iface.removeCustomActionForLayerType(action)
        self.style_actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # Dependencies -------------------------------------------------------------------------------
    def install_dependencies(self, python=None, gpu=None, runner=None, log=None):
        """Install onnxruntime(-gpu), pystac-client, sentinelsat into the plugin's deps folder (blocking)."""
        import subprocess

        from qgis.core import QgsMessageLog

        def _log(msg):
            QgsMessageLog.logMessage(msg, "SatClassify", compat.MSG_INFO)
            if log:
                log(msg)

        return deps.install(self.deps_folder(), python=python, gpu=gpu, runner=runner or subprocess.run, log=_log)

    def start_dependency_install(self):
        """Run :meth:`install_dependencies` in a background task; report in the message bar."""
        from qgis.core import QgsTask

        from .core.contract.errors import SatClassifyError

        bar = self.iface.messageBar()

        def work(task):
            return self.install_dependencies()

        def done(exception, result=None):
            if exception is None:
                bar.pushMessage(
                    "SatClassify",
                    "Installed "
                    + ", ".join(result or [])
                    + ". Restart QGIS if a tool still reports a missing package.",
                    compat.MSG_SUCCESS,
                    15,
                )
            else:
                msg = str(exception) if isinstance(exception, SatClassifyError) else repr(exception)
                bar.pushMessage("SatClassify", "Installing dependencies failed: " + msg, compat.MSG_CRITICAL, 0)

        bar.pushMessage("SatClassify", "Installing Python dependencies in the background...", compat.MSG_INFO, 5)
        self.deps_task = QgsTask.fromFunction("SatClassify: install Python dependencies", work, on_finished=done)
        QgsApplication.taskManager().addTask(self.deps_task)
        return self.deps_task

    # Training environment and diagnostics ------------------------------------------------------------
    def setup_training_env(
        self,
        log=None,
        progress=None,
        is_canceled=None,
        gpu=None,
        torch_index=None,
        find_links=None,
        reqs=None,
        no_index=None,
    ):
        """Create or update the plugin-owned training environment (blocking; see install/training_env.py).
        ``torch_index`` / ``find_links`` default to SATCLASSIFY_TORCH_INDEX_URL / SATCLASSIFY_TRAINING_WHEELS, then
        the dialog's settings. Returns the environment's Python."""
        import os

        from qgis.core import QgsMessageLog, QgsSettings

        from .core.contract.feedback import Monitor
        from .install import training_env
        from .install.training_dialogs import TORCH_INDEX_SETTING, WHEELS_SETTING

        def _log(msg):
            QgsMessageLog.logMessage(msg, "SatClassify", compat.MSG_INFO)
            if log:
                log(msg)

        settings = QgsSettings()
        if torch_index is None:
            torch_index = os.environ.get("SATCLASSIFY_TORCH_INDEX_URL") or settings.value(TORCH_INDEX_SETTING, "")
        if find_links is None:
            find_links = os.environ.get("SATCLASSIFY_TRAINING_WHEELS") or settings.value(WHEELS_SETTING, "")
        gpu = deps.has_nvidia_gpu() if gpu is None else gpu
        folder = training_env.env_dir(QgsApplication.qgisSettingsDirPath())
        return training_env.create_env(
            folder,
            training_env.base_python(),
            reqs or training_env.read_requirements(),
            torch_index=torch_index or "",
            find_links=find_links or "",
            no_index=bool(no_index),
            log=_log,
            monitor=Monitor(progress=progress, is_canceled=is_canceled),
            gpu=gpu,
        )

    def start_training_env_setup(self, log=None, finished=None, **kw):
        """:meth:`setup_training_env` in a background task with progress (cancellable in the task bar)."""
        from qgis.core import QgsTask

        from .core.contract.errors import SatClassifyError

        bar = self.iface.messageBar()

        def work(task):
            return self.setup_training_env(
                log=log, progress=lambda f: task.setProgress(100.0 * f), is_canceled=task.isCanceled, **kw
            )

        def done(exception, result=None):
            if exception is None:
                msg = f"Training environment ready: {result}. Train model (Processing > SatClassify) uses it."
                bar.pushMessage("SatClassify", msg, compat.MSG_SUCCESS, 15)
            else:
                msg = str(exception) if isinstance(exception, SatClassifyError) else repr(exception)
                bar.pushMessage(
                    "SatClassify",
                    "Setting up the training environment failed: " + msg.splitlines()[0],
                    compat.MSG_CRITICAL,
                    0,
                )
            if finished:
                finished(exception is None, msg)

        bar.pushMessage(
            "SatClassify",
            "Setting up the training environment in the background (PyTorch: a large download)...",
            compat.MSG_INFO,
            5,
        )
        self.training_env_task = QgsTask.fromFunction(
            "SatClassify: set up training environment", work, on_finished=done
        )
        QgsApplication.taskManager().addTask(self.training_env_task)
        return self.training_env_task

    def open_training_env_dialog(self, probe=None):
        """Plugins > SatClassify > Set up training environment...: returns the dialog (shown, not modal)."""
        from .install import training_env
        from .install.training_dialogs import TrainingEnvDialog

        dialog = TrainingEnvDialog(self, self.iface.mainWindow(), probe=probe or training_env.probe)
        dialog.show()
        self.training_env_dialog = dialog
        return dialog

    def open_diagnostics(self, probe=None, blocking=False):
        """Plugins > SatClassify > Diagnostics...: returns the dialog (shown, not modal)."""
        from .install import training_env
        from .install.training_dialogs import DiagnosticsDialog

        dialog = DiagnosticsDialog(self.iface.mainWindow(), probe=probe or training_env.probe)
        dialog.show()
        dialog.refresh(blocking=blocking)
        self.diagnostics_dialog = dialog
        return dialog

    # Models ---------------------------------------------------------------------------------------
    def open_models_dialog(self, download=None):
        """Plugins > SatClassify > Manage models...: the model list with card summaries, add from a file or a URL.
        Returns the dialog (shown, not modal)."""
        from .algorithms.classifypatches import model_catalogue
        from .install.models_dialog import ModelsDialog

        dialog = ModelsDialog(model_catalogue(), self.iface.mainWindow(), download=download)
        dialog.changed.connect(self.models_changed)
        dialog.show()
        self.models_dialog = dialog
        return dialog

    def models_changed(self):
        """A model was added or removed: the tools' model lists (MODEL_ID) are read again."""
        if self.provider is not None:
            self.provider.refreshAlgorithms()

    # Layer actions --------------------------------------------------------------------------
    def style_active_layer(self, combination, layer=None):
        """Draw the clicked (current) raster in ``combination`` (a named style of the layer); a raster without
        the bands gets a message naming them. Returns whether the style was applied."""
        from .algorithms.styles import apply_stack_combination
        from .core.contract.errors import SatClassifyError
        from .core.s2.style import COMBINATIONS

        layer = layer or self.iface.activeLayer()
        if layer is None or layer.type() != compat.LAYER_RASTER:
            return False
        try:
            done = apply_stack_combination(layer, combination)
        except SatClassifyError as e:
            done, why = False, str(e)
        else:
            bands = "/".join(" or ".join(c) for c in COMBINATIONS[combination])
            why = f"{combination} needs bands named {bands} (band descriptions, as the SatClassify stacks have)"
        if not done:
            self.iface.messageBar().pushMessage("SatClassify", f"{layer.name()}: {why}", compat.MSG_WARNING, 10)
        return done

    def open_dialog_for_layer(self, alg_id, param, layer=None):
        """Open the tool's dialog with the clicked (current) layer filled in. Returns the dialog."""
        import processing

        layer = layer or self.iface.activeLayer()
        params = {param: layer} if layer is not None else {}
        dialog = processing.createAlgorithmDialog(alg_id, params)
        if dialog is not None:
            dialog.show()
        return dialog
