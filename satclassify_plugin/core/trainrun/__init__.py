"""Driving the training package from QGIS: the training CLI runs as a child process in its own environment.

* :mod:`.protocol` - the architectures (without importing the training package or torch), the command lines,
  and the parser of the child's progress lines (``SATCLASSIFY_PROGRESS {json}``, or the human epoch lines of
  older training packages);
* :mod:`.child` - the child process: its own process group, lines streamed to callbacks, cancel = terminate the
  group (DataLoader workers too), then kill; its one-line error message;
* :mod:`.report` - the training report (HTML, the curves picture embedded, the validation figures);
* :mod:`.diagnostics` - what will run where (onnxruntime and its providers here, torch and CUDA in the training
  environment, asked by a small child process).

Pure Python (no qgis, no torch).
"""
