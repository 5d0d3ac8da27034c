"""Device kits, the device side: ``python -m edgeprune.kit.collect KIT`` measures a kit with only numpy and
onnxruntime (or TensorRT). Nothing is imported here, so that importing the collector stays torch-free."""
