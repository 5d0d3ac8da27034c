"""One JSON line of a validate report: model, target, MACs and measured speedups with their intervals."""

import json
import sys

model, target, path = sys.argv[1:4]
report = json.loads(open(path).read())
d = report["derived"]
line = {"model": model, "target": target, "macs_speedup": round(d["macs_speedup"], 3),
        "measured_speedup": round(d["measured_speedup"], 3), "ci": [round(v, 3) for v in d["speedup_ci"]]}
if d.get("speedup_over_fp32") is not None:
    line["over_dense_fp32"] = round(d["speedup_over_fp32"], 3)
    line["over_dense_fp32_ci"] = [round(v, 3) for v in d["speedup_over_fp32_ci"]]
print(json.dumps(line))
