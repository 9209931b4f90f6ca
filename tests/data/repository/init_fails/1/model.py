"""init_fails: initialize raises, so the model never becomes ready."""
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        raise Exception("initialize failed on purpose")

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]) for r in requests]
