"""image_segment: a pixel belongs to the foreground when it is brighter than one half."""
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("MASK", pixels > 0.5)]))
        return responses
