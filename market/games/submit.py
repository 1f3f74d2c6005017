"""Where compare's profiles run: in this process, a local process pool or Ray tasks. Each
yields (job, result, None) or (job, None, exception), so a crashed profile is reported and the
others go on."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed

__all__ = ["submit_local", "submit_ray"]


def _ignore_sigint() -> None:
    """A worker's initializer: Ctrl-C is the parent's to handle (no traceback per worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def submit_local(fn, jobs, workers: int):
    """Run `fn(*job)` for every job, in this process (one worker) or a spawned process pool;
    yields (job, result, None) or (job, None, exception) as each finishes."""
    if workers == 1:  # in this process: no spawn cost, and families registered in code are seen
        for job in jobs:
            try:
                yield job, fn(*job), None
            except Exception as exc:  # a crashed profile is reported, the others go on
                yield job, None, exc
        return
    import multiprocessing as mp

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=_ignore_sigint)
    futures = {pool.submit(fn, *job): job for job in jobs}
    try:
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                yield job, fut.result(), None
            except Exception as exc:  # a crashed profile is reported, the others go on
                yield job, None, exc
    except KeyboardInterrupt:  # Ctrl-C reaches this process only: stop the workers now
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(cancel_futures=True)


def submit_ray(fn, jobs, workers: int):
    """The same as `submit_local` with Ray tasks (joining a running cluster if there is one)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--backend ray needs ray: pip install 'genmarket[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address="auto", ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError):
            ray.init(num_cpus=workers, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)
    task = ray.remote(num_cpus=1, max_retries=1)(fn)
    refs = {task.remote(*job): job for job in jobs}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        job = refs[done[0]]
        try:
            yield job, ray.get(done[0]), None
        except Exception as exc:
            yield job, None, exc
