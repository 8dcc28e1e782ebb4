"""A Dask worker plugin for the batch tests: the worker that starts a chosen scene's task kills itself (SIGKILL, as
an out-of-memory kill or a lost node would), once; a marker file says it happened."""

import os
import signal

from distributed import WorkerPlugin


class KillOnStart(WorkerPlugin):
    def __init__(self, match, marker):
        self.match, self.marker = match, marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and self.match in str(key) and not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
