#!/usr/bin/env python3
"""Main job: lists the SatClassify tools through qgis_process (the full chain comes with the demo issue)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "qgis_process.sh"), "list"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return out.returncode
    lines = out.stdout.splitlines()
    start = lines.index("SatClassify")
    print("SatClassify tools available to qgis_process:")
    for line in lines[start + 1:]:
        if not line.strip():
            break
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
