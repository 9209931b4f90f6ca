"""gRPC over HTTP/2 on the server's event loop: h2 keeps the protocol's state, these modules map its
events to calls of the service's handlers (``connection.py``), one stream each (``call.py``)."""
