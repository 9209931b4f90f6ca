"""labels: OUTPUT0 = [0.1, 0.7, 0.05, 0.15] * INPUT0[0]; OUTPUT0 has labels.txt (cat, dog, bird, fish)."""
import numpy as np
import triton_python_backend_utils as pb_utils

SCORES = np.array([0.1, 0.7, 0.05, 0.15], dtype=np.float32)


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for r in requests:
            scale = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy().reshape(-1)[0]
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", (SCORES * scale).astype(np.float32))]))
        return responses
