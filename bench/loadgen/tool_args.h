// What bench/loadgen's two tools (loadgen.cc, floor_server.cc) share: `--name value` flags and a
// file read as one gRPC message.
#pragma once

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <iterator>
#include <string>

namespace bench_tools {

// The value after `--name`, or `fallback` when the flag is not given.
inline std::string Flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

// A file's bytes (a serialized request or response) as one message buffer.
inline grpc::ByteBuffer ReadMessage(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace bench_tools
