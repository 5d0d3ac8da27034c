"""Fine-tune a pruned YOLO with distillation for a fixed wall time (Ultralytics' ``time`` mode re-plans the
epoch count after each epoch), for the GPU run of bench/gpu/run.sh.

    python bench/gpu/finetune_yolo.py MODEL DATA_YAML OUT_DIR MINUTES [LR]
"""

import json
import sys

from edgeprune.train.detect import finetune_detector

model, data, out, minutes = sys.argv[1:5]
lr = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4
result = finetune_detector(model, data, out, epochs=1000, imgsz=640, batch=16, lr=lr,
                           teacher="ultralytics:yolov8n.yaml", extra={"time": float(minutes) / 60})  # fmt: skip
print(json.dumps(result))
