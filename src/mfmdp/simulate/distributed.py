"""Ray executor: events x methods x seeds fan out as tasks on a Ray cluster (or a local one).

Each task is the same pure function of (replay, models, method, seed) that the local executor runs,
with the same torch thread count, so the numbers equal the local executor's for the same seeds.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


def _require_ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is in the distributed extra
        raise RuntimeError("executor 'ray' needs the distributed extra: pip install 'mfmdp[distributed]'") from err
    return ray


@contextmanager
def ray_session(cfg):
    """A local Ray cluster for the block (when the executor is Ray and none is running), so that several
    batches of tasks (the calibration's couplings) start it once instead of once per batch."""
    if cfg.executor.kind != "ray":
        yield
        return
    ray = _require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=cfg.executor.num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(cfg, tasks: list[tuple[str, str, int]], replays: dict, models) -> Iterator:
    ray = _require_ray()
    with ray_session(cfg):
        @ray.remote
        def simulate_task(cfg, replay, models, method, seed):
            import torch

            from mfmdp.simulate.methods import get_method
            from mfmdp.simulate.runner import simulate_method

            torch.set_num_threads(cfg.executor.torch_threads)
            labels, traj = simulate_method(cfg, get_method(method), replay, models, seed)
            texts = traj.attrs.get("texts") if traj is not None else None
            return labels, traj, texts

        models_ref = ray.put(models)
        cfg_ref = ray.put(cfg)
        replay_refs = {eid: ray.put(r) for eid, r in replays.items()}
        futures = {simulate_task.remote(cfg_ref, replay_refs[eid], models_ref, method, seed): (eid, method, seed)
                   for eid, method, seed in tasks}
        remaining = list(futures)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            labels, traj, texts = ray.get(done[0])
            if traj is not None:
                traj.attrs["texts"] = texts  # DataFrame.attrs do not survive serialisation reliably
            yield futures[done[0]], (labels, traj)
