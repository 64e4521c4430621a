"""The Wordstream gRPC server. Never imports torch.

A word's trip: transport.py (the servicer: one dispatch table) -> service.py (the domain:
models, sessions, metrics) -> sessions.py (Session.push_words: checks, reserves room, hands
its slot to) -> batching.py (one ONNX Runtime call for every step waiting, on
modelfile.StepModel; the slot lives in statebank.py) -> back in sessions.py (the history
records the steps) -> answers.py (the answer's bytes) -> transport.py. status.py maps
domain errors (errors.py) to gRPC codes; registration.py registers the servicer;
persistence.py saves and restores sessions; config.py holds the settings.
"""
