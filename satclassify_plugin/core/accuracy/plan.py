"""Planning steps of the accuracy and change tools (pure Python + numpy, no GDAL): the user's choices checked when
made, the class table and value transforms chosen from dicts, the stratified estimator's glue and the from-to
categories of a change.

:func:`.assess.assess`, :func:`.points.assess_points` and :func:`.change.land_cover_change` open the rasters
and read them window by window; what they decide between reading and writing is here, so it is tested in
tests/core without rasters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..contract import clc
from ..contract.errors import SatClassifyError
from . import tables as accuracy


@dataclass(frozen=True)
class MapOptions:
    """IGNORE, RECLASSIFY, NAMES, LEVEL and LEVEL_MAPS of an assessment, read and checked (:meth:`read`)."""

    ignore: Tuple[int, ...] = (0,)
    recl: accuracy.Reclassification = field(default_factory=accuracy.Reclassification)
    names_table: Optional[dict] = None
    level: Optional[int] = None
    level_maps: str = "both"
    reclassify: Optional[str] = None  # the paths as given (for the metrics' inputs)
    names: Optional[str] = None

    @classmethod
    def read(
        cls,
        ignore="0",
        reclassify: Optional[str] = None,
        names: Optional[str] = None,
        level=None,
        level_maps: str = "both",
    ) -> "MapOptions":
        lv = accuracy.check_level(level)
        if level_maps not in ("both", "classified", "reference"):
            raise SatClassifyError(f"LEVEL maps must be both, classified or reference, not {level_maps!r}")
        ignore_list = accuracy.parse_ignore(ignore)
        recl = accuracy.read_reclassification(reclassify) if reclassify else accuracy.Reclassification()
        names_table = accuracy.read_names(names) if names else None
        return cls(tuple(ignore_list), recl, names_table, lv, level_maps, reclassify, names)

    @property
    def ignore_list(self) -> List[int]:
        return list(self.ignore)

    def level_for(self, which: str) -> Optional[int]:
        """The CLC level ``which`` map ("classified" / "reference") is aggregated to, or None."""
        return self.level if (self.level and self.level_maps in ("both", which)) else None

    def transformed(self, which: str) -> bool:
        """Whether ``which`` map's values are changed (reclassified or aggregated), so its own names do not apply."""
        return bool(self.recl.for_map(which)) or bool(self.level_for(which))

    def transform(self, which: str, nodata: Optional[int], raw_values: Sequence[int]) -> accuracy.MapTransform:
        """``which`` map's transform: reclassify first, then the CLC level (grid codes 1..44 or 111..523 detected
        from ``raw_values``, the values present); IGNORE values and ``nodata`` are excluded."""
        ign = set(self.ignore) | ({nodata} if nodata is not None else set())
        base = accuracy.MapTransform(which, ign, None, self.recl.for_map(which))
        use = self.level_for(which)
        source = "grid"
        if use:
            source = accuracy.detect_clc_source(base.map_values([v for v in raw_values if v not in ign]), which)
        return accuracy.MapTransform(
            which, ign, None, self.recl.for_map(which), use, source, ignore_after=self.ignore_list
        )

    def inputs(self) -> dict:
        return {
            "reclassify": self.reclassify or None,
            "names": self.names or None,
            "level": self.level,
            "level_maps": self.level_maps if self.level else None,
        }


def class_table(values: Sequence[int], names_table, level: Optional[int], sources: Sequence[dict]) -> List[dict]:
    """value, name, color for each value: ``names_table``, else the CLC tables (``level``), else each of
    ``sources`` (category dicts value -> (name, color)) in order, else 'class N' with a default colour."""
    tables = (
        ([names_table] if names_table else [])
        + ([{c.value: (c.name, c.color) for c in clc.classes(level)}] if level else [])
        + list(sources)
    )
    out = []
    for v in values:
        name, color = None, None
        for s in tables:
            if v in s:
                name = name or s[v][0]
                color = color or s[v][1]
            if name and color:
                break
        out.append({"value": int(v), "name": name or f"class {v}", "color": color or clc.default_palette(max(v, 1))})
    return out


def compared_values(present: Dict[str, np.ndarray], transforms: Dict[str, accuracy.MapTransform]) -> List[int]:
    """The sorted comparison values of both maps (present values, IGNORE / nodata left out, transformed)."""
    out = set()
    for which in accuracy.MAPS:
        t = transforms[which]
        out |= set(t.map_values([v for v in present[which].tolist() if v not in t.ignore]))
    return sorted(out)


# ---- reference points (stratified estimator) ----

SKIPPED = ("outside_map", "on_map_nodata", "masked_out", "empty_reference", "unknown_reference", "ignored_reference")


def known_reference_classes(strata: Sequence[int], options: MapOptions, map_categories: dict) -> set:
    """The reference values a point may hold: the strata, the NAMES table, the CLC level's classes and, when the
    map's values are not transformed, the map's categories."""
    known = set(strata) | set(options.names_table or {})
    if options.level:
        known |= {c.value for c in clc.classes(options.level)}
    if not options.transformed("classified"):
        known |= set(map_categories)
    return known


class SampleTally:
    """The points used ((map, reference) pairs) and those left out, by reason, with up to 10 examples each."""

    def __init__(self):
        self.pairs: List[Tuple[int, int]] = []
        self.skipped = {k: 0 for k in SKIPPED}
        self.examples = {k: [] for k in SKIPPED + ("stratum_mismatch",)}
        self.mismatch = 0

    def skip(self, kind: str, p: dict, detail: str = "") -> None:
        self.skipped[kind] += 1
        if len(self.examples[kind]) < 10:
            self.examples[kind].append(f"{p.get('id', '?')}{detail}")

    def stratum_mismatch(self, p: dict, stratum: int, raw_map: int) -> None:
        self.mismatch += 1
        if len(self.examples["stratum_mismatch"]) < 10:
            self.examples["stratum_mismatch"].append(f"{p.get('id', '?')} (stratum {stratum}, map {raw_map})")

    def warnings(self) -> List[str]:
        out = [
            f"WARNING: {self.skipped[k]} point(s) left out, {k.replace('_', ' ')}: "
            + ", ".join(self.examples[k])
            + (" ..." if self.skipped[k] > len(self.examples[k]) else "")
            for k in SKIPPED
            if self.skipped[k]
        ]
        if self.mismatch:
            out.append(
                f"WARNING: {self.mismatch} point(s) have a 'stratum' attribute that disagrees with the map "
                "under them (the map decides the stratum; was the sample drawn from another map?): "
                + ", ".join(self.examples["stratum_mismatch"])
            )
        return out


def reference_class(
    ref, attribute, tr: accuracy.MapTransform, ignore_list, known: set
) -> Tuple[Optional[str], str, int]:
    """(reason the point is left out or None, detail, comparison value) of a reference ``attribute`` (as read)
    and ``ref``, its value parsed by :func:`.points.parse_reference`."""
    if ref is None:
        return "empty_reference", "", -1
    if ref == "unknown" or ref < 0:
        return "unknown_reference", f" ({attribute!r})", -1
    if ref in tr.ignore:
        return "ignored_reference", f" ({ref})", -1
    r = int(tr._map(np.array([ref], np.int64))[0][0])
    if r < 0 and ref in ignore_list:
        return "ignored_reference", f" ({ref})", -1
    if r < 0 or r not in known:
        return "unknown_reference", f" ({ref})", -1
    return None, "", r


def error_matrix(pairs: Sequence[Tuple[int, int]], strata: Sequence[int]):
    """(values, index value -> row, n_ij sample counts with rows = map stratum, columns = reference class)."""
    values = sorted(set(strata) | {r for _, r in pairs})
    index = {v: i for i, v in enumerate(values)}
    n_ij = np.zeros((len(values), len(values)), dtype=np.int64)
    for m, r in pairs:
        n_ij[index[m], index[r]] += 1
    return values, index, n_ij


def sample_metrics(n_ij: np.ndarray, values: List[int], index: dict, est: dict, table: List[dict]) -> dict:
    """The metrics of a sample: compute_metrics on the estimated area-proportion matrix (population estimates),
    sample counts as support / predicted / confusion_matrix, and the estimator's OA, CIs and area estimates."""
    from ..contract.metrics import compute_metrics

    by_value = {c["value"]: c for c in table}
    p = np.asarray(est["area_proportion_matrix"])
    metrics = compute_metrics(p.T, values, {c["value"]: c["name"] for c in table})  # rows = reference
    metrics["confusion_matrix"] = n_ij.T.tolist()
    metrics["pixels"] = int(n_ij.sum())
    for c in metrics["classes"]:
        c["color"] = by_value[c["value"]]["color"]
        c["support"] = int(n_ij[:, index[c["value"]]].sum())
        c["predicted"] = int(n_ij[index[c["value"]]].sum())
    for k in ("overall_accuracy", "overall_accuracy_se", "overall_accuracy_ci95"):
        metrics[k] = est[k]
    metrics["estimator"] = "stratified (Olofsson et al. 2014, Remote Sensing of Environment 148, 42-57)"
    metrics["area_proportion_matrix"] = est["area_proportion_matrix"]
    metrics["area_proportion_matrix_orientation"] = "rows = map (classified), columns = reference"
    metrics["area_estimates"] = [
        {
            "value": e["value"],
            "name": by_value[e["value"]]["name"],
            "color": by_value[e["value"]]["color"],
            "mapped_pixels": int(e["mapped_pixels"]),
            "mapped_area_ha": e["mapped_area_ha"],
            "weight": e["weight"],
            "sample_points": e["sample_points"],
            "reference_points": int(n_ij[:, i].sum()),
            "estimated_area_ha": e["estimated_area_ha"],
            "estimated_area_se_ha": e["estimated_area_se_ha"],
            "ci95_ha": e["ci95_ha"],
            "area_proportion": e["area_proportion"],
            "users_accuracy": e["users_accuracy"],
            "users_accuracy_ci95": e["users_accuracy_ci95"],
            "producers_accuracy": e["producers_accuracy"],
            "producers_accuracy_ci95": e["producers_accuracy_ci95"],
        }
        for i, e in enumerate(est["classes"])
    ]
    return metrics


# ---- land-cover change ----

CANDIDATES_NEED_CONFIDENCE = (
    "map update candidates need a CONFIDENCE raster (e.g. the CONFIDENCE output of "
    "satclassify:classify for the second map)"
)


@dataclass(frozen=True)
class ChangeOptions:
    """MMU, confidence THRESHOLD, IGNORE and NAMES of a change comparison, checked when made."""

    mmu_ha: float = 5.0
    threshold: float = 80.0
    ignore: Tuple[int, ...] = (0,)
    names_table: Optional[dict] = None

    @classmethod
    def read(
        cls,
        mmu_ha: float = 5.0,
        threshold: float = 80.0,
        ignore="0",
        names: Optional[str] = None,
        candidates: bool = False,
        confidence: bool = False,
    ) -> "ChangeOptions":
        if mmu_ha is None or not math.isfinite(float(mmu_ha)) or float(mmu_ha) < 0:
            raise SatClassifyError(f"the minimum mapping unit must be >= 0 ha (0 = every pixel), got {mmu_ha}")
        if not 0 <= float(threshold) <= 100:
            raise SatClassifyError(f"the confidence threshold is in percent (0-100), got {threshold}")
        if candidates and not confidence:
            raise SatClassifyError(CANDIDATES_NEED_CONFIDENCE)
        ignore_list = accuracy.parse_ignore(ignore)
        names_table = accuracy.read_names(names) if names else None
        return cls(float(mmu_ha), float(threshold), tuple(ignore_list), names_table)

    @property
    def ignore_list(self) -> List[int]:
        return list(self.ignore)

    def mmu_pixels(self, pixel_area_ha: float) -> int:
        """The sieve threshold: the smallest patch (pixels) reaching the MMU (1 = no sieve)."""
        return max(1, int(math.ceil(self.mmu_ha / pixel_area_ha - 1e-9))) if self.mmu_ha > 0 else 1


def lighter(color: str, f: float = 0.55) -> str:
    c = color.lstrip("#")
    rgb = [int(c[i : i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(v + (255 - v) * f):02x}" for v in rgb)


def change_categories(pairs: np.ndarray, first: List[dict], second: List[dict], area_ha: float):
    """(lut pair code -> category 1..K, {category: entry}) of the (from, to) pairs that occur (``pairs``: pixel
    counts by code = first index * len(second) + second index), sorted by from then to value."""
    k2 = len(second)
    cat_lut = np.zeros(len(pairs), dtype=np.int64)
    categories = {}
    for k, code in enumerate(np.flatnonzero(pairs), start=1):
        a, b = divmod(int(code), k2)
        f, t = first[a], second[b]
        changed = f["value"] != t["value"]
        cat_lut[code] = k
        categories[k] = {
            "value": k,
            "from": f["value"],
            "to": t["value"],
            "from_name": f["name"],
            "to_name": t["name"],
            "name": f"{f['name']} -> {t['name']}",
            "changed": bool(changed),
            "color": t["color"] if changed else lighter(f["color"]),
            "pixels": int(pairs[code]),
            "area_ha": float(pairs[code] * area_ha),
        }
    return cat_lut, categories
