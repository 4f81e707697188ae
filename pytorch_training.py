"""Train, export and evaluate a text + tabular classifier under the SageMaker training contract.

Reads the train/val/test splits and ``hyperparameters.json`` from the contract's locations (base
``/opt/ml``, or ``SAGEMAKER_BASE_DIR``; docs/contract.md), then runs the steps of ``job.steps``:

1. configure: validate the hyperparameters (unknown keys, wrong types, contradicting fields) and
   apply an upstream step's ``model_artifacts_input``; plan processes and devices;
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

Any error writes ``output/failure`` (first line: what to change) and exits with status 1.
``DRY_RUN=true`` runs the same steps on a sample of each split in a scratch folder and prints a
report instead (``job/dry_run.py``). Command-line arguments (``train``, or the ``--name value``
pairs the SageMaker toolkit passes) are ignored: hyperparameters.json is the only configuration.
"""

from __future__ import annotations

import logging
import sys

from contracts.environment import RunSwitches
from contracts.failure import failure_reason, write_failure
from contracts.logs import configure_logging
from contracts.paths import ContractPaths, resolve_paths
from evaluation.report import metric_lines
from export.manifest import RunRecord
from job import steps
from job.dry_run import DryRun
from job.steps import JobOutcome
from training.distributed import local_rank
from training.interruption import StopRequest

log = logging.getLogger("pytorch_training")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    paths = resolve_paths()
    first_on_node = local_rank() == 0  # the other ranks of a node only report a failure nobody else did
    if first_on_node:
        paths.failure_file.unlink(missing_ok=True)
    args = sys.argv[1:] if argv is None else argv
    if args:
        log.info("Ignoring command-line arguments %s; the job is configured by hyperparameters.json", args)
    stop = StopRequest()
    try:
        with stop.installed():
            switches = RunSwitches.from_env()
            if switches.dry_run:
                with DryRun.in_scratch_folder() as dry_run:
                    dry_run.report(run(paths, switches, stop, dry_run))
            else:
                for line in metric_lines(run(paths, switches, stop).metrics):
                    print(line, flush=True)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # an exit raised inside the job is a failure too
        if first_on_node or not paths.failure_file.exists():
            write_failure(paths.failure_file, exc)
        log.error("Job failed: %s", failure_reason(exc), exc_info=exc)
        return 1
    return 0


def run(paths: ContractPaths, switches: RunSwitches, stop: StopRequest, dry_run: DryRun | None = None) -> JobOutcome:
    """The job, one line per step. A dry run carries on from the checked data with a sample of it,
    in a scratch folder, without the text cache."""
    record = RunRecord()
    setup = steps.configure(paths, switches, record)
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
    with steps.global_rank_zero_outputs(paths, trained) as staging:
        if staging:
            onnx_parity = steps.export(staging, setup.config, pretrained, prepared, built, trained)
            metrics = steps.evaluate(staging, setup.config, pretrained, data, prepared, trained)
            steps.record(staging, record, setup.config, data, trained, onnx_parity, metrics)
    steps.track(paths, trained, metrics)
    log.info("Done in %.0fs", record.elapsed)
    return JobOutcome(metrics, built.model, trained.trainer)


if __name__ == "__main__":
    sys.exit(main())
