from llmkit_worker.protocol import first_line


def test_the_one_line_error_is_the_first_line_that_says_something():
    # safetensors' shared-tensor message begins with a newline; the error once read "RuntimeError: ;".
    message = "\n            Some tensors share memory, this will lead to duplicate memory on disk.\n            [{'a', 'b'}]\n"
    assert first_line(message) == "Some tensors share memory, this will lead to duplicate memory on disk."
    assert first_line("") == ""
    assert first_line("one\ntwo") == "one"
