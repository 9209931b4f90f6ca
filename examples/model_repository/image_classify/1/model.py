"""image_classify: the brightest pixel's position is the class, the mean brightness the score."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS").as_numpy()
            class_id = np.argmax(pixels, axis=1).astype(np.int32).reshape(-1, 1)
            score = pixels.mean(axis=1, dtype=np.float32).reshape(-1, 1)
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("CLASS_ID", class_id), pb_utils.Tensor("SCORE", score)]))
        return responses
