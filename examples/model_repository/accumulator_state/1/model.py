"""accumulator_state: OUTPUT = ACC_OUT = ACC_IN + INPUT; the server carries ACC between requests."""
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            acc = pb_utils.get_input_tensor_by_name(request, "ACC_IN").as_numpy()
            value = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            total = (acc + value).astype(acc.dtype)
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT", total), pb_utils.Tensor("ACC_OUT", total)]))
        return responses
