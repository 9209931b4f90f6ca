"""exec_raises: execute raises a plain Python exception."""


class TritonPythonModel:
    def execute(self, requests):
        raise Exception("boom")
