"""Plugins > SatClassify > "Set up training environment..." and "Diagnostics...".

* :func:`current_training_python` - the training environment the tools use now (``training_env.resolve`` with
  this QGIS's setting and profile).
* :func:`diagnostics_lines` - what will run where: QGIS, Python, onnxruntime and its execution providers, the
  training environment's Python, torch, CUDA and the GPU (asked with ``python -m training diagnose``).
* :class:`DiagnosticsDialog`, :class:`TrainingEnvDialog` - the two dialogs. Their work is in methods that take
  their input as arguments (:meth:`TrainingEnvDialog.use_existing`), so tests drive them as a user does.
"""

from qgis.core import Qgis, QgsApplication, QgsSettings, QgsTask
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from . import training_env

TORCH_INDEX_SETTING = "SatClassify/torch_index_url"
WHEELS_SETTING = "SatClassify/training_wheels"


def current_training_python():
    """(Python of the training environment or None, where it came from / why there is none)."""
    return training_env.resolve(QgsSettings().value(training_env.SETTING, ""), QgsApplication.qgisSettingsDirPath())


def diagnostics_lines(probe=training_env.probe):
    """The diagnostics report as lines (runs a small child process in the training environment: seconds)."""
    from ..core.trainrun.diagnostics import report_lines

    python, source = current_training_python()
    info = probe(python) if python else None
    return report_lines(Qgis.version(), info, python, source)


def _text_box():
    box = QPlainTextEdit()
    box.setReadOnly(True)
    return box


class DiagnosticsDialog(QDialog):
    """The diagnostics report; the training environment is asked in a background task (torch takes seconds to
    import), the QGIS side shows at once."""

    def __init__(self, parent=None, probe=training_env.probe):
        super().__init__(parent)
        self.setWindowTitle("SatClassify diagnostics")
        self.resize(760, 320)
        self.probe = probe
        self.text = _text_box()
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda _checked=False: QApplication.clipboard().setText(self.text.toPlainText()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(buttons)
        self.task = None

    def refresh(self, blocking=False):
        """Fill the report (``blocking``: in this thread, for tests and scripts). Returns the lines when blocking."""
        lines = diagnostics_lines(lambda _py: None)
        self.text.setPlainText("\n".join(lines + ["  (asking the training environment...)"]))
        if blocking:
            lines = diagnostics_lines(self.probe)
            self.text.setPlainText("\n".join(lines))
            return lines

        def done(exception, result=None):
            self.text.setPlainText("\n".join(result) if exception is None else f"diagnostics failed: {exception}")

        self.task = QgsTask.fromFunction(
            "SatClassify: diagnostics", lambda _task: diagnostics_lines(self.probe), on_finished=done
        )
        QgsApplication.taskManager().addTask(self.task)
        return None


class TrainingEnvDialog(QDialog):
    """Create / update the plugin's own training environment, or choose an existing one."""

    #: a log line of the set-up task (emitted from its thread, shown in the dialog's thread)
    line = pyqtSignal(str)

    def __init__(self, plugin, parent=None, probe=training_env.probe):
        super().__init__(parent)
        self.plugin, self.probe = plugin, probe
        self.setWindowTitle("SatClassify training environment")
        self.resize(780, 520)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        settings = QgsSettings()

        own = QGroupBox("The plugin's own environment (recommended)")
        form = QFormLayout(own)
        self.folder = QLabel(training_env.env_dir(QgsApplication.qgisSettingsDirPath()))
        self.folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        from .deps import has_nvidia_gpu

        self.gpu = has_nvidia_gpu()
        form.addRow("Folder", self.folder)
        form.addRow(
            "PyTorch build",
            QLabel(
                "CUDA (an NVIDIA GPU was found)"
                if self.gpu
                else "CPU (no NVIDIA GPU found; see the docs for the small CPU-only build)"
            ),
        )
        self.torch_index = QLineEdit(settings.value(TORCH_INDEX_SETTING, "") or "")
        self.torch_index.setPlaceholderText(
            "optional: an extra package index for torch (e.g. PyTorch's CPU-only wheels)"
        )
        form.addRow("Extra index for torch", self.torch_index)
        self.wheels = QLineEdit(settings.value(WHEELS_SETTING, "") or "")
        self.wheels.setPlaceholderText("optional: a folder of wheel files (offline installs)")
        form.addRow("Wheel folder", self.wheels)
        self.create_button = QPushButton("Create / update the environment")
        self.create_button.clicked.connect(lambda _checked=False: self.start_setup())
        form.addRow(self.create_button)

        other = QGroupBox("Or use an existing environment (its Python, with torch and the training requirements)")
        row = QHBoxLayout(other)
        self.existing = QLineEdit(settings.value(training_env.SETTING, "") or "")
        self.existing.setPlaceholderText("e.g. /path/to/.venv-train/bin/python")
        browse = QPushButton("Browse...")
        browse.clicked.connect(lambda _checked=False: self.ask_python())
        use = QPushButton("Check and use")
        use.clicked.connect(lambda _checked=False: self.use_existing(self.existing.text()))
        forget = QPushButton("Forget")
        forget.clicked.connect(lambda _checked=False: self.use_existing(""))
        for w in (self.existing, browse, use, forget):
            row.addWidget(w)

        self.log = _text_box()
        self.line.connect(self.log.appendPlainText)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        for w in (self.status, own, other, self.log, buttons):
            lay.addWidget(w)
        self.show_status()

    def show_status(self):
        python, source = current_training_python()
        self.status.setText(f"In use: {python} ({source})" if python else f"No training environment yet: {source}.")
        return python

    def ask_python(self):
        path, _ = QFileDialog.getOpenFileName(self, "Python of the training environment")
        if path:
            self.existing.setText(path)

    def use_existing(self, python):
        """Check ``python`` (``python -m training diagnose`` must import torch) and save it as the setting; an empty
        value forgets the setting. Returns the message shown."""
        python = (python or "").strip()
        if not python:
            QgsSettings().remove(training_env.SETTING)
            message = "The chosen environment was forgotten."
        else:
            info = self.probe(python)
            if info.get("torch"):
                QgsSettings().setValue(training_env.SETTING, python)
                message = (
                    f"Using {python}: Python {info.get('python')}, torch {info.get('torch')}, CUDA "
                    f"{'usable' if info.get('cuda_available') else 'not usable'}."
                )
            else:
                message = (
                    f"{python} cannot train: {info.get('error') or 'torch is missing'}. The setting was not changed."
                )
        self.log.appendPlainText(message)
        self.show_status()
        return message

    def start_setup(self):
        settings = QgsSettings()
        settings.setValue(TORCH_INDEX_SETTING, self.torch_index.text().strip())
        settings.setValue(WHEELS_SETTING, self.wheels.text().strip())
        self.create_button.setEnabled(False)

        def finished(ok, message):
            self.log.appendPlainText(message)
            self.create_button.setEnabled(True)
            self.show_status()

        return self.plugin.start_training_env_setup(
            log=self.line.emit,
            finished=finished,
            torch_index=self.torch_index.text().strip(),
            find_links=self.wheels.text().strip(),
        )
