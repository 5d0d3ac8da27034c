"""The ``edgeprune`` command line: thin commands that parse, call the library, and print.

Exit codes: 0 success; 1 a user error (:class:`edgeprune.errors.EdgepruneError`: the message names the
cause); 2 a usage error; 3 exported numerics differ from torch; 4 the measured speedup falls short of the
prediction; 130 interrupted (re-run to resume). Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import click

from edgeprune.cli.common import PipelineGroup
from edgeprune.cli.compress import compress_cmd
from edgeprune.cli.deploy import export_cmd, report_cmd, validate_cmd
from edgeprune.cli.inspect import graph_cmd, models_cmd, targets_cmd
from edgeprune.cli.profile import kit_cmd, profile_group
from edgeprune.cli.prune import prune_cmd, shrink_cmd
from edgeprune.cli.train import eval_cmd, finetune_cmd, train_cmd


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="edgeprune")
def main() -> None:
    """edgeprune: structured pruning driven by latency measured on the target device.

    \b
    A typical run, in pipeline order:
      edgeprune targets                                        what runs here
      edgeprune prune cifar_resnet56 --pretrained --target cpu-ort --latency 0.7x --out runs/p
      edgeprune validate cifar_resnet56 runs/p --pretrained --target cpu-ort --out runs/v
      edgeprune compress cifar_resnet56 --pretrained --target cpu-ort --latency 0.7x --out runs/c
    MODEL is a registry name (edgeprune models), pkg.module:factory, a training run or a pruned folder.
    """


# pipeline order: look, train, measure the device, prune, deploy, check; then the whole pipeline
for command in (models_cmd, graph_cmd, train_cmd, eval_cmd, targets_cmd, profile_group, prune_cmd, export_cmd,
                validate_cmd, compress_cmd, report_cmd):  # fmt: skip
    main.add_command(command)
# older spellings, hidden, kept for one release
main.add_command(finetune_cmd)
main.add_command(shrink_cmd)
main.add_command(click.Command("kit", params=kit_cmd.params, callback=kit_cmd.callback, hidden=True,
                               help="Older spelling of `profile kit`."))  # fmt: skip

__all__ = ["main"]
