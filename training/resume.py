"""``train --resume CKPT``: the run's options come from the checkpoint. What the user gives beside it is never
dropped silently: :func:`resume_config` applies the options a resumed run may change
(:data:`RESUME_OVERRIDABLE`), refuses the others when they differ from the checkpoint's run (naming each, with
the checkpoint's value) and returns a note that names what it changed and what it kept, e.g. ``resuming
runs/u/last.pt: changes --epochs 20 -> 30; keeps --model unet, --lr 0.001 (the checkpoint's); every other option
is the checkpoint's``. Options from a ``--config`` file count as given (named ``lr: 0.1 (--config)``)."""

from typing import Any, Collection, Dict, List, Tuple

from .config import FIELD_NAMES, TrainConfig
from .errors import TrainingError

#: options that may change when resuming (everything else comes from the checkpoint)
RESUME_OVERRIDABLE = (
    "epochs",
    "out",
    "device",
    "amp",
    "amp_dtype",
    "progress",
    "num_workers",
    "early_stopping",
    "max_steps",
    "data",
    "channels_last",
)
#: options about the resuming itself, not the run's
NOT_RUN_OPTIONS = ("resume", "config")


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _given(key: str, value: Any, config_keys: Collection[str]) -> str:
    """How the user gave an option: ``--lr 0.1`` or ``lr: 0.1 (--config)``."""
    return f"{key}: {show(value)} (--config)" if key in config_keys else f"{flag(key)} {show(value)}"


def _as_resolved(base: Dict[str, Any], key: str, value: Any) -> Any:
    """``value`` of option ``key`` as the checkpoint's run would have resolved it (``--optimizer auto`` is the
    architecture's optimizer, an omitted ``lr`` its default learning rate)."""
    try:
        return getattr(TrainConfig(**{**base, key: value}).resolved(), key)
    except (TrainingError, TypeError, ValueError):
        return value


def resume_config(
    checkpoint: str, base: Dict[str, Any], explicit: Dict[str, Any], config_keys: Collection[str] = ()
) -> Tuple[TrainConfig, str]:
    """The config of a run resumed from ``checkpoint`` whose saved config is ``base``, with the options the
    user gave (``explicit``; ``config_keys``: those of them that came from the --config file) applied or
    refused; and the note saying what was changed and what kept."""
    base = {k: v for k, v in base.items() if k in FIELD_NAMES}
    ck = TrainConfig(**base).to_dict()  # an option the checkpoint predates: its default, which the run used
    given = {k: v for k, v in explicit.items() if v is not None and k not in NOT_RUN_OPTIONS}
    if given.get("encoder_from"):
        raise TrainingError(
            f"--resume '{checkpoint}' continues a run with the checkpoint's weights: "
            f"{_given('encoder_from', given['encoder_from'], config_keys)} initialises a new run "
            "only. Drop it to resume, or train a new run without --resume"
        )
    refuse_resume_conflicts(checkpoint, ck, given, config_keys)
    changed, kept = [], []
    for k, v in given.items():
        if k in RESUME_OVERRIDABLE:
            if v != ck.get(k):
                was = f" (was {show(ck[k])})" if ck.get(k) is not None else ""
                changed.append(_given(k, v, config_keys) + was)
            ck[k] = v
        elif k in ck:
            kept.append(_given(k, v, config_keys))
    ck["resume"] = checkpoint
    ck["encoder_from"] = None
    return TrainConfig(**ck), resume_note(checkpoint, changed, kept)


def resume_note(checkpoint: str, changed: List[str], kept: List[str]) -> str:
    parts = [f"resuming {checkpoint}"]
    if changed:
        parts.append("changes " + ", ".join(changed))
    if kept:
        parts.append("keeps " + ", ".join(kept) + " (the checkpoint's already)")
    parts.append("every other option is the checkpoint's" if changed or kept else "with the checkpoint's options")
    return parts[0] + ": " + "; ".join(parts[1:])


def refuse_resume_conflicts(
    checkpoint: str, base: Dict[str, Any], explicit: Dict[str, Any], config_keys: Collection[str] = ()
) -> None:
    """Refuse options given with --resume that the checkpoint fixes (not in :data:`RESUME_OVERRIDABLE`) and that
    differ from its run's (compared as that run resolved them): the model, encoder, bands, learning rate... come
    from the checkpoint, so they would be ignored."""
    bad = [
        k
        for k, v in explicit.items()
        if v is not None
        and k not in RESUME_OVERRIDABLE
        and k not in NOT_RUN_OPTIONS
        and k in base
        and _as_resolved(base, k, v) != base[k]
    ]
    if bad:
        given = ", ".join(
            f"{_given(k, explicit[k], config_keys)} (the checkpoint's run has {show(base[k])})" for k in bad
        )
        raise TrainingError(
            f"--resume '{checkpoint}' continues a {base.get('model')} run whose options it fixes: {given}. Drop "
            f"{'this option' if len(bad) == 1 else 'these options'} to resume, or train a new run without --resume "
            f"(only {', '.join(flag(k) for k in RESUME_OVERRIDABLE)} may change when resuming)"
        )
