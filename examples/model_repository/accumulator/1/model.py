"""accumulator: keeps one running sum per sequence (CORRID), reset by START, skipped when not READY."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sums = {}

    def execute(self, requests):
        responses = []
        for request in requests:
            get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
            corrid = int(get("CORRID").reshape(-1)[0])
            if get("START").reshape(-1)[0]:
                self.sums[corrid] = 0
            if get("READY").reshape(-1)[0]:
                self.sums[corrid] = self.sums.get(corrid, 0) + int(get("INPUT").reshape(-1)[0])
            total = np.array([[self.sums.get(corrid, 0)]], np.int32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", total)]))
        return responses
