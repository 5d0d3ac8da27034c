"""The plans the shipped cuda-torch-fp16 profile makes at half the MACs (planning only, no GPU), each printed with
a hash of its channels and its price, so two versions of the planner can be compared:

    (cd /tmp && PYTHONPATH=/tmp/old python /work/main/bench/targets/rank/cuda_plans.py)   # a worktree of 839480a
    (cd /tmp && PYTHONPATH=/work/main python /work/main/bench/targets/rank/cuda_plans.py)
"""

import hashlib
import json
import warnings

import torch

import edgeprune
from edgeprune.graph import build_graph
from edgeprune.latency import Profile, collect_layers
from edgeprune.latency.profile import find_profile
from edgeprune.latency.profiler import model_input_shape
from edgeprune.models import create_model
from edgeprune.plan.planner import Budget, PlanConstraints, plan_pruning
from edgeprune.targets import channel_align, load_target

warnings.simplefilter("ignore")
target = load_target("cuda-torch-fp16")
profile = Profile.load(find_profile(target.name, target.backend), strict=False)
print(edgeprune.__file__)
for name in ["mobilenet_v2", "resnet50", "cifar_resnet56"]:
    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = model_input_shape(name, target)
    graph = build_graph(model, torch.randn(1, *shape[1:]), model_name=name)
    constraints = PlanConstraints(align=channel_align(target))
    r = plan_pruning(model, graph, collect_layers(model, shape), Budget.parse("macs", "0.5x"), "latency", profile,
                     constraints=constraints, side=shape[-1])  # fmt: skip
    keep = json.dumps({str(k): v for k, v in sorted(r.plan.keep.items())})
    price, macs = r.pruned["latency"] / r.dense["latency"], r.pruned["macs"] / r.dense["macs"]
    print(f"{name} {hashlib.md5(keep.encode()).hexdigest()[:10]} predicted {price:.3f} macs {macs:.3f}")
