"""The OpenAI request bodies tritonlite reads, as pydantic models.

Fields the API defines and tritonlite does not act on are refused where ignoring them would give a
wrong answer (tools, a JSON response format, token-array prompts); other unknown fields are kept
(``extra="allow"``) and passed to the model with the sampling parameters, as vLLM takes ``top_k``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tritonlite.frontends.openai.errors import OpenAIError, bad_request

# Request fields that are no sampling parameter: never passed on in ``sampling_parameters``.
NOT_SAMPLING = {
    "model", "prompt", "messages", "input", "stream", "stream_options", "n", "echo", "user", "logprobs",
    "top_logprobs", "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "functions", "function_call", "metadata", "store",
    "service_tier", "logit_bias", "suffix", "best_of", "modalities", "audio", "prediction",
    "reasoning_effort", "encoding_format", "dimensions",
}  # fmt: skip


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingFields(BaseModel):
    """What completions and chat completions share."""

    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = None

    def stop_strings(self) -> list[str]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > 4:
            raise bad_request("'stop' takes at most 4 sequences", param="stop")
        return [s for s in stop if s]

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    suffix: str | None = None

    def prompts(self) -> list[str]:
        if self.suffix:
            raise bad_request("'suffix' is not supported", param="suffix")
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not prompts:
            raise bad_request("'prompt' is empty", param="prompt")
        return prompts


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None

    def check_supported(self) -> None:
        if self.tools or self.tool_choice not in (None, "none"):
            raise bad_request("tools are not supported by tritonlite's OpenAI routes", param="tools")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise bad_request("only the 'text' response_format is supported", param="response_format")
        if self.top_logprobs and not self.logprobs:
            raise bad_request("'top_logprobs' needs 'logprobs' set to true", param="top_logprobs")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def inputs(self) -> list[str]:
        inputs = [self.input] if isinstance(self.input, str) else self.input
        if not inputs:
            raise bad_request("'input' is empty", param="input")
        return inputs


def parse(model: type[BaseModel], document: Any) -> Any:
    """``document`` as ``model``, or OpenAI's 400 naming the first field at fault."""
    if not isinstance(document, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        param = str(first["loc"][0]) if first["loc"] else None
        raise OpenAIError(400, f"{where}: {first['msg']}", param=param) from None
