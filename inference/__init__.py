"""Scoring a trained model: load a saved ``model/`` folder, preprocess rows as the training job did,
run ONNX Runtime or PyTorch, and shape the predictions. Used by the job's evaluation and the batch scorer."""
