"""exec_fails: every response carries a TritonError."""
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(
            output_tensors=[], error=pb_utils.TritonError("execute failed on purpose"))
            for _ in requests]
