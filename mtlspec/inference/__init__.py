"""After training: the weights-only model file a run keeps (model_file), predictions on new images or
a split (predict, with inputs, writers and overlays), and export to TorchScript or ONNX (export)."""
