"""gRPC status codes of failed RPCs: through a real server, LogSettings values of the wrong type
answer INVALID_ARGUMENT as Triton 2.51 does (not UNKNOWN) and a ModelInfer message that does not
parse keeps its INTERNAL status; ``answering_errors`` turns what any handler raises into a status."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import requests
import tritonclient.grpc as grpcclient
from serverutil import RunningServer
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tritonlite.core.errors import DecoupledModelError, invalid_arg, not_found
from tritonlite.frontends.grpc.server import DECOUPLED_MESSAGE, answering_errors
from tritonlite.frontends.grpc.transport.call import Abort


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    running = RunningServer([tmp_path_factory.mktemp("empty_repository")])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(empty_server):
    with grpc.insecure_channel(empty_server.grpc) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def log_settings_request(**settings: tuple[str, object]) -> service_pb2.LogSettingsRequest:
    """A request setting each name to (SettingValue field, value); a None field leaves the value unset."""
    request = service_pb2.LogSettingsRequest()
    for name, (field, value) in settings.items():
        setting = request.settings[name]
        if field is not None:
            setattr(setting, field, value)
    return request


# answers of tritonserver 2.51 to the same requests
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"log_info": ("string_param", "yes")}, "expect boolean for 'log_info'"),
        ({"log_warning": ("uint32_param", 1)}, "expect boolean for 'log_warning'"),
        ({"log_error": (None, None)}, "expect boolean for 'log_error'"),
        ({"log_verbose_level": ("bool_param", True)}, "expect int32 for 'log_verbose_level'"),
        ({"log_format": ("bool_param", True)}, "expect string for 'log_format'"),
        ({"log_format": ("string_param", "bad")}, "invalid argument for log_format, got: bad"),
        (
            {"log_format": ("string_param", "bad"), "log_info": ("string_param", "yes")},
            "expect boolean for 'log_info'",
        ),
    ],
)
def test_bad_log_setting_is_invalid_argument(empty_server, stub, settings, message):
    client = grpcclient.InferenceServerClient(empty_server.grpc)
    before = client.get_log_settings(as_json=True)
    with pytest.raises(grpc.RpcError) as failure:
        stub.LogSettings(log_settings_request(**settings))
    assert (failure.value.code(), failure.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert client.get_log_settings(as_json=True) == before


def test_good_log_setting_still_applies(empty_server, stub):
    answer = stub.LogSettings(log_settings_request(log_info=("bool_param", False)))
    assert answer.settings["log_info"].bool_param is False
    client = grpcclient.InferenceServerClient(empty_server.grpc)
    assert client.update_log_settings({"log_info": True}, as_json=True)["settings"]["log_info"] == {"bool_param": True}
    assert "log_verbose_level" in stub.LogSettings(service_pb2.LogSettingsRequest()).settings


def test_http_words_the_same_bad_value_as_triton_http(empty_server):
    answer = requests.post(f"http://{empty_server.http}/v2/logging", json={"log_info": "yes"}, timeout=5)
    assert (answer.status_code, answer.json()) == (500, {"error": "attempt to access JSON non-boolean as boolean"})


def test_model_infer_that_does_not_parse_is_internal(empty_server):
    with grpc.insecure_channel(empty_server.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as failure:
            infer(b"\x0a\x05ab")  # model_name: 5 bytes announced, 2 sent
    # tritonlite's text since the start; tritonserver's grpc++ answers INTERNAL "Unable to parse request"
    assert (failure.value.code(), failure.value.details()) == (
        grpc.StatusCode.INTERNAL,
        "Exception deserializing request!",
    )


class RecordingContext:
    """Stands for a call: ``abort`` records the status and raises as a call does."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise Abort(code, details)


def unary_status(handler) -> tuple[grpc.StatusCode, str] | None:
    context = RecordingContext()
    with pytest.raises(Abort):
        asyncio.run(answering_errors(handler)(None, context))
    return context.status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (not_found("unknown model"), (grpc.StatusCode.NOT_FOUND, "unknown model")),
        (DecoupledModelError("m"), (grpc.StatusCode.UNIMPLEMENTED, DECOUPLED_MESSAGE)),
        (RuntimeError("boom"), (grpc.StatusCode.INTERNAL, "internal error: RuntimeError: boom")),
    ],
)
def test_every_unary_rpc_answers_its_error_as_a_status(error, status):
    async def rpc(request, context):
        raise error

    assert unary_status(rpc) == status


def test_an_rpc_that_aborts_itself_keeps_its_status():
    async def rpc(request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "")

    assert unary_status(rpc) == (grpc.StatusCode.UNIMPLEMENTED, "")


def test_a_streaming_rpc_answers_an_error_after_its_responses():
    async def rpc(requests, context):
        yield "first"
        raise invalid_arg("bad stream")

    async def collect(context: RecordingContext) -> list[str]:
        received = []
        with pytest.raises(Abort):
            async for response in answering_errors(rpc)(None, context):
                received.append(response)
        return received

    context = RecordingContext()
    assert asyncio.run(collect(context)) == ["first"]
    assert context.status == (grpc.StatusCode.INVALID_ARGUMENT, "bad stream")
