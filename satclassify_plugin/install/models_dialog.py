"""Plugins > SatClassify > Manage models...: the model list (install/model_catalogue.py) with each model's card
summary, and "Add from file..." / "Add from URL..." / "Remove".

Errors (a file that is not a model, a checksum mismatch, a failed download) are shown in the dialog's status line,
never in a modal box, so the dialog is driven the same way by a user and by the tests (:meth:`ModelsDialog.add_file`
and :meth:`ModelsDialog.add_url` take their input as arguments; the buttons ask for it first).
"""

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from ..core.contract.errors import SatClassifyError
from ..core.contract.feedback import Monitor
from .model_catalogue import entry_summary, summary_text

ID_ROLE = Qt.ItemDataRole.UserRole


class UrlDialog(QDialog):
    """Asks for a model's URL, its expected SHA-256 and an optional display name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add a model from a URL")
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://.../model.onnx")
        self.sha256 = QLineEdit()
        self.sha256.setPlaceholderText("64 hexadecimal digits, as published with the model (sha256sum)")
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional")
        form = QFormLayout(self)
        form.addRow("URL of the .onnx file", self.url)
        form.addRow("Expected SHA-256", self.sha256)
        form.addRow("Display name", self.name)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class ModelsDialog(QDialog):
    """The model list and its card summaries. ``changed`` is emitted after a model was added or removed."""

    changed = pyqtSignal()

    def __init__(self, catalogue, parent=None, download=None):
        super().__init__(parent)
        self.catalogue = catalogue
        self.download = download  # None: the plugin's HTTP client (tests may pass their own)
        self.setWindowTitle("SatClassify models")
        self.resize(760, 460)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(lambda *_: self.show_summary())
        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.add_file_button = QPushButton("Add from file...")
        self.add_file_button.clicked.connect(lambda _checked=False: self.ask_file())
        self.add_url_button = QPushButton("Add from URL...")
        self.add_url_button.clicked.connect(lambda _checked=False: self.ask_url())
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(lambda _checked=False: self.remove_selected())
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        top = QHBoxLayout()
        top.addWidget(self.list, 2)
        top.addWidget(self.summary, 3)
        buttons = QHBoxLayout()
        for b in (self.add_file_button, self.add_url_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        header = QLabel(
            "Models offered by Classify raster patches (MODEL_ID). The first shipped model is the "
            "default; models you add are kept in " + catalogue.user_folder
        )
        header.setWordWrap(True)
        layout.addWidget(header)
        layout.addLayout(top, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.refresh()

    # -- list ------------------------------------------------------------------------------------------------
    def refresh(self, select=None):
        """Reload the list; select ``select`` (an id), else keep the current model, else the first."""
        keep = select or self.current_id()
        self.list.clear()
        try:
            entries = self.catalogue.entries()
        except SatClassifyError as e:
            entries = self.catalogue.shipped()
            self.report(str(e), error=True)
        for e in entries:
            item = QListWidgetItem(e.label)
            item.setData(ID_ROLE, e.id)
            self.list.addItem(item)
        rows = [i for i in range(self.list.count()) if self.list.item(i).data(ID_ROLE) == keep]
        if self.list.count():
            self.list.setCurrentRow(rows[0] if rows else 0)
        else:
            self.summary.setPlainText("No model yet: add one from a file or a URL.")
        self.show_summary()

    def ids(self):
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def current_id(self):
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item is not None else None

    def show_summary(self):
        mid = self.current_id()
        entry = None
        if mid is not None:
            try:
                entry = self.catalogue.get(mid)
                text = summary_text(entry_summary(entry))
                where = "shipped with the plugin" if entry.shipped else f"added {entry.added} from {entry.source}"
                text = f"{entry.id}: {where}\n{entry.path}\n\n{text}"
            except (SatClassifyError, OSError) as e:
                text = f"{mid}: the model's card cannot be read: {e}"
            self.summary.setPlainText(text)
        self.remove_button.setEnabled(entry is not None and not entry.shipped)

    def summary_of_current(self) -> str:
        return self.summary.toPlainText()

    def report(self, message, error=False):
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(message)

    # -- actions -----------------------------------------------------------------------------------------------
    def _busy(self, work, what):
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            return work()
        except SatClassifyError as e:
            self.report(f"{what}: {e}", error=True)
        except OSError as e:
            self.report(f"{what}: {e.strerror or e} ({e.filename or ''})", error=True)
        finally:
            QApplication.restoreOverrideCursor()
        return None

    def _added(self, entry):
        if entry is not None:
            self.refresh(select=entry.id)
            self.report(f"'{entry.id}' is in the list: choose it as the model in Classify raster patches.")
            self.changed.emit()
        return entry

    def add_file(self, path, name=None):
        """Add a local .onnx file (checked, copied into the user folder). Returns the entry, or None (the status
        line says why)."""
        return self._added(
            self._busy(lambda: self.catalogue.add_file(path, name=name or None), "Adding the model failed")
        )

    def add_url(self, url, sha256, name=None):
        """Download ``url``, check its SHA-256 and card, add it. Returns the entry, or None (status says why)."""

        def progress(f):
            self.report(f"Downloading {url}: {100 * f:.0f} %")
            QApplication.processEvents()

        monitor = Monitor(progress=progress, info=self.report)

        def add():
            from qgis.core import QgsProcessingException

            from ..algorithms._network import qgis_proxy  # QGIS's proxy (Settings > Options > Network)

            try:
                proxy = qgis_proxy()
            except QgsProcessingException as e:
                raise SatClassifyError(str(e))
            return self.catalogue.add_url(
                url, sha256, name=name or None, download=self.download, monitor=monitor, proxy=proxy
            )

        return self._added(self._busy(add, "Adding the model failed"))

    def ask_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Add a SatClassify ONNX model", "", "ONNX models (*.onnx)")
        return self.add_file(path) if path else None

    def ask_url(self):
        dlg = UrlDialog(self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return None
        return self.add_url(dlg.url.text().strip(), dlg.sha256.text().strip(), dlg.name.text().strip())

    def remove_selected(self):
        mid = self.current_id()
        if mid is None:
            return False
        done = self._busy(lambda: self.catalogue.remove(mid) or True, f"Removing '{mid}' failed")
        if done:
            self.refresh()
            self.report(f"'{mid}' was removed from the list.")
            self.changed.emit()
        return bool(done)
