"""The gRPC server's transport settings from Triton's flags: keepalive, HTTP/2 pings, connection age,
port reuse and response compression."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

# --grpc-infer-response-compression-level: gRPC Python chooses an algorithm, not a level
COMPRESSION_BY_LEVEL = {
    "none": grpc.Compression.NoCompression,
    "low": grpc.Compression.Gzip,
    "medium": grpc.Compression.Gzip,
    "high": grpc.Compression.Gzip,
}


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
        if self.response_compression not in COMPRESSION_BY_LEVEL:
            raise ValueError(
                "invalid argument for --grpc-infer-response-compression-level: expected none, low, medium or "
                f"high, got '{self.response_compression}'"
            )

    def channel_args(self) -> list[tuple[str, int]]:
        """The channel arguments gRPC core reads for these settings."""
        args = [
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(self.keepalive_permit_without_calls)),
            ("grpc.http2.max_pings_without_data", self.http2_max_pings_without_data),
            ("grpc.http2.min_ping_interval_without_data_ms", self.http2_min_recv_ping_interval_without_data_ms),
            ("grpc.http2.max_ping_strikes", self.http2_max_ping_strikes),
            ("grpc.so_reuseport", int(self.reuse_port)),
        ]
        if self.max_connection_age_ms is not None:
            args.append(("grpc.max_connection_age_ms", self.max_connection_age_ms))
        if self.max_connection_age_grace_ms is not None:
            args.append(("grpc.max_connection_age_grace_ms", self.max_connection_age_grace_ms))
        return args

    @property
    def compression(self) -> grpc.Compression:
        return COMPRESSION_BY_LEVEL[self.response_compression]
