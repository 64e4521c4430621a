"""The Wordstream gRPC server. Never imports torch.

transport.py (gRPC) -> service.py (the domain) -> sessions.py (state, history, limits)
and inference.py (ONNX Runtime); config.py holds the settings, errors.py the error tree.
"""
