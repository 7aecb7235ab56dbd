"""The ``review-transfer`` command line: thin click commands that parse options and call the package.

Only click, the standard library and light project modules are imported here; torch,
transformers and sentence-transformers are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
import warnings

import click

from pipeline import __version__
from pipeline.cli.active import label, suggest
from pipeline.cli.compare import compare
from pipeline.cli.data import data
from pipeline.cli.embed import cache_group, embed
from pipeline.cli.finetune import finetune
from pipeline.cli.fit import evaluate, fit, predict
from pipeline.cli.retarget import retarget
from pipeline.cli.serve import serve
from pipeline.cli.unlabelled import adapt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="review-transfer")
def main() -> None:
    """Classify reviews as positive or negative from a few hundred labels, by transfer learning.

    \b
    Data        data      show: what every command reads from SOURCE (rows, labels, the leak-free split)
                cache     list, check or delete the embedding cache (ls, info, verify, rm)
    Stage one   embed     encode texts once into an HDF5 cache (GloVe, Word2Vec, MiniLM, mpnet, e5...)
    Stage two   fit       train scikit-learn heads on cached vectors, save model bundles
                predict   label new texts with a bundle;  evaluate: score a bundle on labelled data
                retarget  carry a bundle to another site with 16-64 of its labels
    Optional    finetune  back-propagate through a language model with a new task head
                adapt     continue pretraining an encoder on unlabelled texts (--self-train: fit/finetune)
    Study       compare   learning curves over label budgets x seeds x encoders x heads
    Labelling   suggest   the texts most worth labelling next (active learning), as a CSV
                label     a local web page to label them one at a time, the model refitted after each
    Serving     serve     a bundle over HTTP (POST /v1/predict, /metrics), micro-batched

    SOURCE is a .csv/.tsv/.jsonl/.json/.parquet file, 'rt' (Rotten Tomatoes critic snippets,
    downloaded on first use) or 'hf:NAME[:SPLIT]' (Hugging Face datasets).
    Start with:  review-transfer data show rt
    """
    warnings.formatwarning = _one_line_warning
    if getattr(sys.modules.get("__main__"), "main", None) is main:  # the command line itself, not a test's runner
        from pipeline.crash_report import report_crashes

        report_crashes()  # a crash in a native library (OpenVINO, onnxruntime, h5py) says where it came from


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """Warnings as ``warning: MESSAGE`` lines: the source line and path mean nothing to CLI users."""
    return f"warning: {message}\n"


for _command in (data, embed, cache_group, fit, predict, evaluate, retarget, finetune, compare, suggest, label, adapt,
                 serve):
    main.add_command(_command)
