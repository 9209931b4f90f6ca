"""The KServe v2 gRPC frontend (package ``inference``, service ``GRPCInferenceService``)."""
