"""gRPC over HTTP/2 on the server's event loop: ``http2.py`` keeps the protocol's state (``hpack``
compresses headers), ``connection.py`` maps a connection's streams to calls of the service's
handlers, one ``call.py`` each; ``framing.py`` is gRPC's message format on top; ``held.py`` keeps
frames and messages read in parts until they are whole."""
