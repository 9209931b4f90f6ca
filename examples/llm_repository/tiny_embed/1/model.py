"""tiny_embed: a hashed bag of words (64 FP32 values, unit length) per text_input."""
import re
import zlib

import numpy as np
import triton_python_backend_utils as pb_utils

WORD = re.compile(r"\w+")
SIZE = 64


def embed(text):
    vector = np.zeros(SIZE, dtype=np.float32)
    for word in WORD.findall(text.lower()):
        code = zlib.crc32(word.encode("utf-8"))
        vector[code % SIZE] += 1.0 if (code >> 16) & 1 else -1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            vector = embed(text.decode("utf-8"))
            answers.append(pb_utils.InferenceResponse([pb_utils.Tensor("embedding", vector)]))
        return answers
