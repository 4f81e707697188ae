"""Train, export and evaluate a text + tabular classifier under the SageMaker training contract.

Reads the train/val/test splits and ``hyperparameters.json`` from the contract's locations (base
``/opt/ml``, or ``SAGEMAKER_BASE_DIR``; docs/contract.md), then runs the steps of ``job.steps``:

1. configure: validate the hyperparameters (unknown keys, wrong types, contradicting fields) and
   apply an upstream step's ``model_artifacts_input``; plan processes and devices; check that every
   output folder takes a file (read-only mounts fail here, not after training);
2. load the tokenizer and the pretrained transformer named by ``tokenizer``, and an earlier job's
   model from the ``pretrained_model`` channel when given (warm start: same architecture, or an error);
3. read the splits and check every row: columns, labels, numeric values; refuse a checkpoint of
   another run;
4. preprocess once: strict labels, mean imputation and risk tables fitted on train (or given),
   the text chain (dialogue splitting, HTML/emoji cleaning, normalisation, chunked tokenization);
5. build the ``model_class`` model and train it with Lightning (early stopping, checkpoints,
   resume after an interruption);
6. on global rank 0, staged so that a failure leaves the previous outputs: export ``model/``
   (state dict, artifacts, tokenizer, encoders, ``model.onnx`` checked against PyTorch), evaluate
   val and test into ``output/data`` and write ``model/manifest.json``; print each metric as
   ``<split>/<metric>=<value>``.

Any error writes ``output/failure`` (first line: what to change) and exits with status 1; so does
a SIGTERM at any moment from the first import of the job on (``training/stop_request.py``;
docs/faults.md lists every fault and what it leaves).
``DRY_RUN=true`` runs the same steps on a sample of each split in a scratch folder and prints a
report instead (``job/dry_run.py``). Command-line arguments (``train``, or the ``--name value``
pairs the SageMaker toolkit passes) are ignored: hyperparameters.json is the only configuration.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import TYPE_CHECKING

# Standard library only up to here and in these modules: importing the job (torch, Lightning,
# transformers) takes seconds, and the stop handler is in place before it starts.
from contracts.environment import RunSwitches
from contracts.failure import failure_reason, write_failure
from contracts.logs import configure_logging
from contracts.paths import ContractPaths, resolve_paths
from training.stop_request import StopRequest

if TYPE_CHECKING:
    from job.dry_run import DryRun
    from job.steps import JobOutcome

log = logging.getLogger("pytorch_training")


def main(argv: list[str] | None = None) -> int:
    stop = StopRequest()
    with stop.installed():  # first: a stop during the seconds of the imports below is reported too
        stop.hold()  # a stop before the failure file's location is known waits for it
        configure_logging()
        paths = resolve_paths()
        first_on_node = True  # a stop during the imports is reported by every process that gets it
        try:
            stop.release()
            from evaluation.report import metric_lines
            from job.dry_run import DryRun
            from training.distributed import local_rank

            stop.check()
            first_on_node = local_rank() == 0  # the node's other ranks only report a failure nobody else did
            if first_on_node:
                paths.failure_file.unlink(missing_ok=True)
            args = sys.argv[1:] if argv is None else argv
            if args:
                log.info("Ignoring command-line arguments %s; the job is configured by hyperparameters.json", args)
            switches = RunSwitches.from_env()
            if switches.dry_run:
                with DryRun.in_scratch_folder() as dry_run:
                    dry_run.report(run(paths, switches, stop, dry_run))
            else:
                for line in metric_lines(run(paths, switches, stop).metrics):
                    print(line, flush=True)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:  # an exit raised inside the job is a failure too
            reported = stop.reported(exc)  # a stop that a library wrapped into an error of its own
            if first_on_node or not paths.failure_file.exists():
                write_failure(paths.failure_file, reported)
            log.error("Job failed: %s", failure_reason(reported), exc_info=exc)
            return 1
    return 0


def run(paths: ContractPaths, switches: RunSwitches, stop: StopRequest, dry_run: DryRun | None = None) -> JobOutcome:
    """The job, one line per step. A dry run carries on from the checked data with a sample of it,
    in a scratch folder, without the text cache."""
    from export.manifest import RunRecord
    from job import steps
    from job.steps import JobOutcome

    record = RunRecord()
    setup = steps.configure(paths, switches, record)
    steps.check_folders(paths, create=dry_run is None)
    pretrained = steps.load_pretrained(setup.config)
    parent = steps.load_parent_model(paths, setup, pretrained, record)
    data = steps.read_data(paths, setup.config)
    if dry_run is not None:
        paths, setup, data = dry_run.on_a_sample(paths, setup, pretrained, data)
    resume = steps.find_checkpoint(paths, setup, data)
    prepared = steps.preprocess(setup, pretrained, data, cache_dir=None if dry_run else paths.text_cache_dir)
    built = steps.build(setup.config, pretrained, prepared, parent)
    trained = steps.train(paths, setup, pretrained, prepared, built, resume, stop)
    metrics: dict = {}
    with steps.global_rank_zero_outputs(paths, trained, stop) as staging:
        if staging:
            onnx_parity = steps.export(staging, setup.config, pretrained, prepared, built, trained)
            metrics = steps.evaluate(staging, setup.config, pretrained, data, prepared, trained)
            steps.record(staging, record, setup.config, data, trained, onnx_parity, metrics)
    steps.track(paths, trained, metrics)
    log.info("Done in %.0fs", record.elapsed)
    return JobOutcome(metrics, built.model, trained.trainer)


if __name__ == "__main__":
    # main() holds its own handler while the job runs; this one is what it restores when it returns, so a
    # stop while the interpreter exits cannot turn the status the job reported into a kill (143).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(main())
