"""The gRPC channel options server and client share: TF Serving's message limit."""

MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts messages up to INT32_MAX
GRPC_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
