"""The web front door: a WebSocket gateway to the gRPC stream, and the live typing page.

``python -m wordstream.gateway --port 8080 --server localhost:50051``; see app.py for the
message contract and static/ for the page.
"""
