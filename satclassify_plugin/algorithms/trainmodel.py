"""satclassify:trainmodel - dataset folder -> trained model (ONNX + card), checkpoints, training report.

The training runs in the training environment (``install/training_env.py``), never in QGIS's Python: the tool
starts ``python -m training train`` there as a child process in its own process group, streams its progress into
the log and the progress bar, then ``export`` (and ``export --quantize int8``) and ``evaluate`` of the best
checkpoint on the validation split for the report. Cancel stops the child (and its DataLoader workers) within a
few seconds. The model files are written under temporary names and renamed only when everything succeeded."""

import json
import os
import time

from qgis.core import (
    QgsApplication,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsSettings,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from ..core.contract.feedback import Canceled, Monitor
from ..core.contract.paths import remove_stale, temp_pattern, temp_tag
from ..core.trainrun import protocol
from ..core.trainrun.child import child_message, run_child
from ..core.trainrun.report import read_log, render, write_report
from ..install import training_env
from .base import SatClassifyAlgorithm

DEVICE_OPTIONS = ["Auto (CUDA when a GPU is usable, else CPU)", "CPU", "CUDA (NVIDIA GPU)"]


def training_python():
    """(Python of the training environment or None, where it came from / why there is none)."""
    return training_env.resolve(QgsSettings().value(training_env.SETTING, ""), QgsApplication.qgisSettingsDirPath())


class TrainModelAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "trainmodel"
    DISPLAY_NAME = "Train model"
    GROUP = "Training data"
    GROUP_ID = "trainingdata"
    TAGS = "train,training,model,deep learning,pytorch,torch,onnx,unet,cnn,gpu,cuda,export"
    MEMORY_HINT = "use a smaller BATCH_SIZE"
    HELP = (
        "Trains a land-cover model on a dataset folder (from Build training patches, or the training package's "
        "BigEarthNet / EuroSAT importers) and exports it to ONNX with its model card, ready for Classify raster "
        "with ONNX model / Classify raster patches.<br>"
        "The training runs in the <b>training environment</b> (PyTorch), never in QGIS's own Python: set it up once "
        "with Plugins &gt; SatClassify &gt; Set up training environment..., or choose an existing one there (or set "
        "the environment variable SATCLASSIFY_TRAINING_PYTHON, e.g. for qgis_process). Plugins &gt; SatClassify &gt; "
        "Diagnostics... says which device it trains on (CUDA GPU or CPU).<br>"
        "<b>Architecture</b>: U-Net (segmentation, any band count), CNN-dual (a fast 5x5 pixel classifier with a "
        "fine and a coarse head: the CPU choice), CNN-class (patch classifier), U-TAE (multi-date datasets). "
        "<b>Encoder</b>: the U-Net / CNN-class encoder (resnet34 by default; satimnet for the light CNN-class). "
        "0 for batch size or learning rate means the architecture's default. A <b>config file</b> (YAML, the "
        "training package's options) sets everything else; the tool's parameters win over it.<br>"
        "Progress and the validation metrics of each epoch appear in the log; Cancel stops the training within "
        "seconds and writes no model. Outputs: the ONNX model (optionally also an int8 model for CPUs), the "
        "checkpoint folder (best.pt, last.pt, log.csv, curves.png) and an HTML training report with the curves "
        "and the validation figures per class of the best checkpoint."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFile(
                "INPUT", "Dataset folder (from Build training patches)", behavior=compat.FILE_BEHAVIOR_FOLDER
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "ARCHITECTURE", "Architecture", options=list(protocol.ARCHITECTURE_LABELS), defaultValue=1
            )
        )
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Epochs", compat.NUMBER_INTEGER, 20, False, 1, 10000))
        self.addParameter(
            QgsProcessingParameterNumber(
                "BATCH_SIZE", "Batch size (0 = the architecture's default)", compat.NUMBER_INTEGER, 0, False, 0, 100000
            )
        )
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICE_OPTIONS, defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber(
                "LR", "Learning rate (0 = the architecture's default)", compat.NUMBER_DOUBLE, 0.0, False, 0.0, 10.0
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean("AUGMENT", "Augmentation (random flips and rotations)", defaultValue=True)
        )
        self.addParameter(
            QgsProcessingParameterBoolean("CLASS_WEIGHTS", "Class weights (inverse frequency)", defaultValue=False)
        )
        self.addParameter(
            QgsProcessingParameterString(
                "ENCODER", "Encoder (U-Net / CNN-class; empty = resnet34)", defaultValue="", optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterFile(
                "CONFIG", "Config file (YAML training options)", extension="yaml", optional=True
            ),
            QgsProcessingParameterNumber("SEED", "Random seed", compat.NUMBER_INTEGER, 0, False, 0),
            QgsProcessingParameterNumber(
                "MAX_STEPS", "Batches per epoch at most (0 = all; quick trials)", compat.NUMBER_INTEGER, 0, False, 0
            ),
        )
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model (ONNX)", "ONNX files (*.onnx)"))
        int8 = QgsProcessingParameterFileDestination(
            "OUTPUT_INT8",
            "Also an int8 model for CPUs (ONNX)",
            "ONNX files (*.onnx)",
            optional=True,
            createByDefault=False,
        )
        self.add_advanced(int8)
        self.addParameter(QgsProcessingParameterFolderDestination("CHECKPOINTS", "Checkpoint folder"))
        self.addParameter(QgsProcessingParameterFileDestination("REPORT", "Training report", "HTML files (*.html)"))
        self.addOutput(QgsProcessingOutputString("DEVICE_USED", "Device the training ran on"))
        self.addOutput(QgsProcessingOutputNumber("EPOCHS_RUN", "Epochs run"))
        self.addOutput(QgsProcessingOutputNumber("VAL_OA", "Validation overall accuracy (best checkpoint)"))
        self.addOutput(QgsProcessingOutputNumber("VAL_MIOU", "Validation mean IoU (best checkpoint)"))

    def canExecute(self):
        python, why = training_python()
        if python is None:
            return False, training_env.missing_message(why)
        return super().canExecute()

    def checkParameterValues(self, parameters, context):
        ok, message = self.canExecute()
        if not ok:
            return False, message
        return super().checkParameterValues(parameters, context)

    def run_tool(self, parameters, context, feedback):
        python, source = training_python()
        if python is None:
            raise SatClassifyError(training_env.missing_message(source))
        data = self.parameterAsFile(parameters, "INPUT", context)
        if not data or not os.path.isdir(data):
            raise SatClassifyError(
                f"INPUT '{data}' is no folder: give the dataset folder written by Build training "
                "patches (it holds manifest.json)"
            )
        onnx = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        int8 = self.parameterAsFileOutput(parameters, "OUTPUT_INT8", context) if parameters.get("OUTPUT_INT8") else ""
        for name, path in (("OUTPUT", onnx), ("OUTPUT_INT8", int8)):
            if path and os.path.splitext(path)[1].lower() != ".onnx":
                raise SatClassifyError(f"{name} '{path}': the model is an ONNX file: name it .onnx")
        run_dir = self.parameterAsFileOutput(parameters, "CHECKPOINTS", context)
        report = self.parameterAsFileOutput(parameters, "REPORT", context)
        model = protocol.ARCHITECTURES[self.parameterAsEnum(parameters, "ARCHITECTURE", context)]
        device = protocol.DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]
        epochs = self.parameterAsInt(parameters, "EPOCHS", context)
        env = training_env.child_env()
        from ..core.trainrun.diagnostics import training_lines

        for line in training_lines(None, python, source):
            feedback.pushInfo(line)
        feedback.pushInfo(f"Training package: {os.path.join(training_env.training_source() or '?', 'training')}")

        def check_cancel():
            if feedback.isCanceled():
                raise Canceled("training cancelled: no model was written")

        cancel = Monitor(is_canceled=feedback.isCanceled)  # the children stop on Cancel
        help_text = []
        helped = run_child(
            [python, "-m", "training", "train", "--help"], env=env, on_stdout=help_text.append, monitor=cancel
        )
        check_cancel()
        if helped.returncode != 0:
            raise SatClassifyError(
                f"the training environment {python} cannot run the training package: "
                f"{child_message(helped, 'python -m training')}. {training_env.SETUP_HINT}"
            )
        cmd = protocol.train_command(
            python,
            data,
            run_dir,
            model=model,
            epochs=epochs,
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            device=device,
            lr=self.parameterAsDouble(parameters, "LR", context),
            augment=self.parameterAsBool(parameters, "AUGMENT", context),
            class_weights=self.parameterAsBool(parameters, "CLASS_WEIGHTS", context),
            encoder=(self.parameterAsString(parameters, "ENCODER", context) or "").strip(),
            config=self.parameterAsFile(parameters, "CONFIG", context) or "",
            seed=self.parameterAsInt(parameters, "SEED", context),
            max_steps=self.parameterAsInt(parameters, "MAX_STEPS", context),
            jsonl=protocol.speaks_jsonl("\n".join(help_text)),
        )
        tracker = protocol.ProgressTracker(epochs)
        train_share = 0.85

        jsonl = "--progress" in cmd

        def on_stdout(line):
            ev = protocol.parse_line(line)
            if ev is None or ev.get("legacy"):  # the human log (with the protocol: its events come as well)
                if line.strip() and not (ev and ev["event"] == "done"):  # not the closing JSON summary
                    feedback.pushInfo(line)
                if ev is None or jsonl:
                    return
            fraction = tracker.update(ev)
            if fraction is not None:
                feedback.setProgress(100.0 * train_share * fraction)
            if ev["event"] == "start" and not ev.get("legacy"):
                feedback.pushInfo(
                    f"Training {ev.get('model', model)} ({ev.get('num_parameters') or 0:,} parameters) "
                    f"on {tracker.device}" + (f", mixed precision {ev['amp']}" if ev.get("amp") else "")
                )

        def on_stderr(line):
            if line.startswith("warning: "):
                if not jsonl:
                    tracker.warnings.append(line[len("warning: ") :])
                feedback.pushWarning(line[len("warning: ") :])
            elif line.strip() and not line.startswith("error: "):
                feedback.pushConsoleInfo(line)

        t0 = time.time()
        feedback.pushCommandInfo(" ".join(cmd))
        res = run_child(cmd, env=env, on_stdout=on_stdout, on_stderr=on_stderr, monitor=cancel)
        if res.canceled:
            raise Canceled(
                f"training cancelled after {len(tracker.history)} epoch(s): no model was written (the "
                f"checkpoint folder {run_dir} keeps what was done)"
            )
        if res.returncode != 0:
            message = child_message(res, "the training")
            if "No module named" in message:  # an environment without torch or another requirement
                message += (
                    f". The training environment {python} lacks a training requirement: {training_env.SETUP_HINT}"
                )
            raise SatClassifyError(message)
        best = tracker.done.get("best") or os.path.join(run_dir, "best.pt")
        if not os.path.isfile(best):
            raise SatClassifyError(
                f"the training wrote no best checkpoint in {run_dir}: no epoch improved (see the log)"
            )
        device_used = tracker.device or device
        feedback.pushInfo(f"Training took {time.time() - t0:.1f} s on device {device_used}")

        # export (float32, then int8) and evaluate, all under temporary names until everything succeeded
        temps = {}
        for key, path in (("OUTPUT", onnx), ("OUTPUT_INT8", int8), ("REPORT", report)):
            if path:
                folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
                os.makedirs(folder, exist_ok=True)
                remove_stale(folder, temp_pattern(name, r"\.part"))
                temps[key] = os.path.join(folder, f".{name}.{temp_tag()}.part")
        try:
            steps = [("export", protocol.export_command(python, best, temps["OUTPUT"]), 0.92)]
            if int8:
                steps.append(
                    (
                        "int8 export",
                        protocol.export_command(python, best, temps["OUTPUT_INT8"], int8_calibration=data),
                        0.96,
                    )
                )
            eval_json = os.path.join(run_dir, "metrics-val.json")
            steps.append(("evaluation", protocol.evaluate_command(python, best, data, eval_json), 0.99))
            for what, step_cmd, end in steps:
                check_cancel()
                feedback.pushCommandInfo(" ".join(step_cmd))
                # export says one line (its parity check); evaluate prints its JSON, which goes into the report
                r = run_child(
                    step_cmd,
                    env=env,
                    monitor=cancel,
                    on_stderr=on_stderr,
                    on_stdout=(lambda s: s.strip() and feedback.pushInfo(s))
                    if what != "evaluation"
                    else (lambda _s: None),
                )
                if r.canceled:
                    raise Canceled(f"{what} cancelled: no model was written")
                if r.returncode != 0:
                    if what == "evaluation":  # the report goes without per-class figures, the model is fine
                        feedback.pushWarning(f"evaluation of the best checkpoint failed: {child_message(r, what)}")
                        continue
                    raise SatClassifyError(child_message(r, f"the {what}"))
                feedback.setProgress(100.0 * end)
            evaluation = None
            if os.path.isfile(eval_json):
                with open(eval_json, encoding="utf-8") as f:
                    evaluation = json.load(f)
            history = _mark_best(tracker.history, read_log(os.path.join(run_dir, "log.csv")))
            recipe = {
                "dataset": data,
                "architecture": model,
                "epochs": epochs,
                "device asked": device,
                "batch size": self.parameterAsInt(parameters, "BATCH_SIZE", context) or "default",
                "learning rate": self.parameterAsDouble(parameters, "LR", context) or "default",
                "seed": self.parameterAsInt(parameters, "SEED", context),
                "epochs run": len(history),
                "training environment": python,
            }
            text = render(
                recipe,
                history,
                evaluation,
                os.path.join(run_dir, "curves.png"),
                {"model": onnx, "int8 model": int8 or "none", "checkpoints": run_dir},
                device_used,
                tracker.warnings,
            )
            write_report(temps["REPORT"], text)
            check_cancel()
            # every file is complete: the names go in place, the model last
            for key, path in (("OUTPUT_INT8", int8), ("REPORT", report), ("OUTPUT", onnx)):
                if path:
                    os.replace(temps.pop(key), path)
        finally:
            for t in temps.values():
                if os.path.exists(t):
                    os.remove(t)
        feedback.setProgress(100)
        head = (evaluation or {}).get("heads") or {}
        first = next(iter(head.values()), {})
        feedback.pushInfo(f"Device used: {device_used} (the training); model written to {onnx}")
        return {
            "OUTPUT": onnx,
            "OUTPUT_INT8": int8 or None,
            "CHECKPOINTS": run_dir,
            "REPORT": report,
            "DEVICE_USED": device_used,
            "EPOCHS_RUN": len(history),
            "VAL_OA": first.get("overall_accuracy"),
            "VAL_MIOU": first.get("miou"),
        }


def _mark_best(history, logged):
    """The epochs with the 'improved' mark of the progress events (the log.csv rows have none)."""
    marks = {r.get("epoch"): r.get("improved") for r in history}
    rows = logged or history
    return [{**r, "improved": bool(marks.get(r.get("epoch")))} for r in rows]
