"""The gRPC server's transport settings from Triton's flags: keepalive, HTTP/2 pings, connection age,
port reuse and response compression (read by ``transport/``, with gRPC core's meanings)."""

from __future__ import annotations

from dataclasses import dataclass

# --grpc-infer-response-compression-level: the grpc-encoding of responses to clients that accept it
ENCODING_BY_LEVEL = {"none": None, "low": "gzip", "medium": "gzip", "high": "gzip"}


@dataclass(frozen=True)
class GrpcChannelOptions:
    """What Triton's --grpc-* transport flags set; the defaults are Triton 2.51's."""

    keepalive_time_ms: int = 7_200_000
    keepalive_timeout_ms: int = 20_000
    keepalive_permit_without_calls: bool = False
    http2_max_pings_without_data: int = 2
    http2_min_recv_ping_interval_without_data_ms: int = 300_000
    http2_max_ping_strikes: int = 2
    max_connection_age_ms: int | None = None
    max_connection_age_grace_ms: int | None = None
    reuse_port: bool = False
    response_compression: str = "none"

    def __post_init__(self) -> None:
        if self.response_compression not in ENCODING_BY_LEVEL:
            raise ValueError(
                "invalid argument for --grpc-infer-response-compression-level: expected none, low, medium or "
                f"high, got '{self.response_compression}'"
            )

    @property
    def response_encoding(self) -> str | None:
        return ENCODING_BY_LEVEL[self.response_compression]
