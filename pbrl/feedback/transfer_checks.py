"""What a PEARL transfer refuses, before any GW solve: one-line errors naming both sides.

- source segments of another length than the run's (``segment_length``) or the target pool's;
- a source from another suite than the target (a Meta-World source cannot label MuJoCo locomotion);
- ``orientation.fused=only`` when the two task YAMLs share no declared feature, or a declared slice that does not
  fit the observations (:mod:`pbrl.feedback.declared`);
- a warning (with the number) when the source store holds fewer than ``min_source_labels`` answered labels.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

from pbrl.data.trajectory import Segment
from pbrl.envs.tasks import TaskSpec, load_task
from pbrl.feedback.declared import DeclaredFeatures, Slices, check_layout, shared_features
from pbrl.types import PbrlError


class TransferSourceWarning(UserWarning):
    """The source store is small or its task is unknown: the transfer may be poor."""


def source_tasks(segments: Sequence[Segment]) -> list[str]:
    """Distinct task names of the source segments, sorted ("" = not recorded)."""
    return sorted({s.task for s in segments})


def _known_task(name: str) -> Optional[TaskSpec]:
    try:
        return load_task(name) if name else None
    except PbrlError:
        return None


def check_lengths(source: Sequence[Segment], *, source_store: str, target_name: str, segment_length: Optional[int],
                  pool: Sequence[Segment] = (), pool_store: Optional[str] = None) -> None:
    """Source (and pool) segments must be the run's ``segment_length`` long."""
    src = sorted({len(s) for s in source})
    if segment_length is not None and src != [int(segment_length)]:
        raise PbrlError(f"feedback.source_store={source_store}: segments of {src} steps, but {target_name} uses "
                        f"segment_length={segment_length}: transfer between segment lengths is refused (collect "
                        f"the source with segment_length={segment_length})")
    bad = sorted({len(s) for s in pool} - set(src))
    if bad:
        raise PbrlError(f"feedback.target_pool={pool_store}: segments of {bad} steps, but feedback.source_store="
                        f"{source_store} holds segments of {src} steps: transfer between segment lengths is refused")


def check_suites(source: Sequence[Segment], *, source_store: str, target: Optional[TaskSpec],
                 target_name: str) -> Optional[TaskSpec]:
    """Refuse a source of another suite; return the source task when it is a single known task.

    A source whose task names are unknown (imported, custom) cannot be checked: a warning says so, and no
    declared feature is used.
    """
    names = source_tasks(source)
    specs = [_known_task(n) for n in names]
    unknown = [n or "<unrecorded>" for n, t in zip(names, specs) if t is None]
    if unknown:
        warnings.warn(f"feedback.source_store={source_store}: source task(s) {unknown} are not known tasks: their "
                      f"suite cannot be checked and no declared feature is used", TransferSourceWarning, stacklevel=3)
    if target is not None:
        other = sorted({t.suite for t in specs if t is not None} - {target.suite})
        if other:
            raise PbrlError(f"feedback.source_store={source_store} holds {'/'.join(other)} segments "
                            f"({', '.join(names)}); {target_name} is a {target.suite} task ({target.name}): "
                            f"cross-suite transfer is refused")
    return specs[0] if len(specs) == 1 else None


def check_label_count(n_labels: int, *, source_store: str, minimum: int) -> None:
    """Warn, with the number, when the source holds fewer answered labels than ``minimum``."""
    if n_labels < minimum:
        warnings.warn(f"feedback.source_store={source_store} holds only {n_labels} answered labels (fewer than "
                      f"feedback.min_source_labels={minimum}): most target pairs will match few labelled source "
                      f"pairs, and the transferred labels will be noisy", TransferSourceWarning, stacklevel=3)


def declared_for(requested: Sequence[str], *, source_task: Optional[TaskSpec], target: Optional[TaskSpec],
                 source: Sequence[Segment], source_store: str, target_name: str, fused: str,
                 pool: Sequence[Segment] = ()) -> Optional[DeclaredFeatures]:
    """The declared features both tasks share (None = plain GW only), checked against the observations."""
    src_slices: Optional[Slices] = source_task.obs_slices if source_task is not None else None
    tgt_slices: Optional[Slices] = target.obs_slices if target is not None else None
    feats = None if fused == "off" else shared_features(requested, src_slices, tgt_slices,
                                                        source_store=source_store, target_name=target_name)
    if feats is None:
        if fused == "only":
            raise PbrlError(f"feedback.orientation.fused=only: feedback.source_store={source_store} "
                            f"({source_task.name if source_task else 'unknown task'}) and {target_name} "
                            f"({target.name if target else 'unknown task'}) share no declared feature of "
                            f"{list(requested)} (obs_slices in their task YAMLs): incompatible observation layouts")
        return None
    check_layout(source, feats.source, side="source", where=f"store {source_store}")
    if pool:
        check_layout(pool, feats.target, side="target", where=target_name)
    return feats
